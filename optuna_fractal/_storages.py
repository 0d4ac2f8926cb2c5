"""Opening a shared storage from a URL, safely when many workers start at the same moment.

Several processes that create Optuna's tables in a fresh PostgreSQL or MySQL database at the
same moment collide. Measured with 8 processes and Optuna 5.1, PostgreSQL raises
``IntegrityError`` (``pg_type_typname_nsp_index``: two ``CREATE TABLE`` of one name). MariaDB
raises ``OperationalError`` 1050 (table already exists) or ``IntegrityError`` 1062 (the
``alembic_version`` row). Every step of Optuna's schema setup checks what exists first, so
retrying after a short random delay finishes the setup that another process started.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit
import warnings

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage
from optuna.study import Study
from optuna.study import StudyDirection

from optuna_fractal._urls import mask_url


_logger = optuna.logging.get_logger(__name__)

# Attempts at the schema setup or the study creation before the error is raised. With the
# delays below, the attempts span about 30 s, long enough for a database server that is
# still starting when a job array starts.
SETUP_ATTEMPTS = 8
_FIRST_DELAY = 0.25
_MAX_DELAY = 8.0

# Seconds to wait for a gRPC proxy server to accept connections.
GRPC_READY_TIMEOUT = 60.0

JOURNAL_PREFIX = "journal:"
GRPC_SCHEME = "grpc"
REDIS_SCHEMES = ("redis", "rediss", "unix")


def storage_kind(url: str) -> str:
    """Return ``"rdb"``, ``"journal-file"``, ``"journal-redis"`` or ``"grpc"`` for a URL.

    Raises:
        ValueError: If ``url`` names no storage this package can open.
    """
    if url.startswith(JOURNAL_PREFIX):
        return "journal-file"
    scheme = urlsplit(url).scheme.lower()
    if scheme in REDIS_SCHEMES:
        return "journal-redis"
    if scheme == GRPC_SCHEME:
        return "grpc"
    if "://" in url:
        return "rdb"
    raise ValueError(
        f"Invalid storage URL {mask_url(url)!r}. Use an SQLAlchemy URL "
        "(sqlite:///study.db, postgresql+psycopg2://user@host/db, mysql+pymysql://user@host/db), "
        "journal:PATH for a journal file, redis://host:port/db for a journal in Redis, or "
        "grpc://host:port for an Optuna gRPC proxy server."
    )


def _retryable_errors() -> tuple[type[BaseException], ...]:
    import sqlalchemy.exc

    return (
        sqlalchemy.exc.IntegrityError,
        sqlalchemy.exc.ProgrammingError,
        sqlalchemy.exc.OperationalError,
    )


# Messages of the errors two processes get when they create Optuna's tables at the same moment:
# PostgreSQL's duplicate `pg_type` row, MariaDB's 1050 (table exists) and 1062 (duplicate key).
_SETUP_RACE_MARKERS = ("already exists", "duplicate", "pg_type_typname_nsp_index", "1050", "1062")


def _is_setup_race(error: BaseException) -> bool:
    import sqlalchemy.exc

    if isinstance(error, sqlalchemy.exc.IntegrityError):
        return True
    text = str(error).lower()
    return any(marker in text for marker in _SETUP_RACE_MARKERS)


def _with_retries(action: str, url: str, function: Any) -> Any:
    """Call ``function()``, retrying after database errors with exponential backoff and jitter."""
    errors = _retryable_errors()
    attempts = SETUP_ATTEMPTS
    delay = _FIRST_DELAY
    for attempt in range(1, attempts + 1):
        try:
            return function()
        except errors as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            if not _is_setup_race(error):
                # A refused connection, a missing database or bad credentials do not go away
                # by waiting: report them at once.
                _logger.error(f"{action} on {mask_url(url)} failed: {mask_url(first_line)}")
                raise
            if attempt == attempts:
                _logger.error(
                    f"{action} on {mask_url(url)} failed after {attempts} attempts: "
                    f"{type(error).__name__}: {mask_url(first_line)}"
                )
                raise
            wait = delay * (1.0 + random.random())
            _logger.warning(
                f"{action} on {mask_url(url)} failed (attempt {attempt} of {attempts}, "
                f"{type(error).__name__}: {mask_url(first_line)}); another worker is probably "
                f"doing the same. Retrying in {wait:.2f} s."
            )
            time.sleep(wait)
            delay = min(delay * 2, _MAX_DELAY)
    raise AssertionError("unreachable")


def _rdb_storage(
    url: str, heartbeat_interval: int | None, grace_period: int | None
) -> BaseStorage:
    import sqlalchemy.engine

    engine_kwargs: dict[str, Any] = {}
    backend = sqlalchemy.engine.make_url(url).get_backend_name()
    if backend == "sqlite":
        # pysqlite waits 5 s for a lock by default; many workers polling one file need more.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        # A worker leaves its connection idle for a whole trial (minutes to hours), so check it
        # before use instead of failing on a connection the server or a firewall closed.
        engine_kwargs["pool_pre_ping"] = True

    def create() -> BaseStorage:
        with warnings.catch_warnings():
            # Optuna marks heartbeat_interval experimental; it is what crash recovery needs.
            warnings.simplefilter("ignore", ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
            )

    return _with_retries("Setting up the Optuna tables", url, create)


def _redis_storage(url: str) -> BaseStorage:
    from optuna.storages.journal import JournalRedisBackend

    # `prefix` keeps several journals apart in one Redis database; redis-py does not know it.
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = "".join(value for name, value in query if name == "prefix")
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    plain_url = urlunsplit(parts._replace(query=rest))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        backend = JournalRedisBackend(plain_url, prefix=prefix)
    return optuna.storages.JournalStorage(backend)


def _grpc_storage(url: str) -> BaseStorage:
    from optuna.storages import GrpcStorageProxy

    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"Invalid gRPC storage URL {mask_url(url)!r}. Use grpc://HOST:PORT.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        proxy = GrpcStorageProxy(host=parts.hostname, port=parts.port)
    proxy.wait_server_ready(timeout=GRPC_READY_TIMEOUT)
    return proxy


def open_storage(
    url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> BaseStorage:
    """Open the storage a URL names; create Optuna's tables in a fresh database if needed.

    URL forms:

    * an SQLAlchemy URL (``sqlite:///``, ``postgresql+psycopg2://``, ``mysql+pymysql://``):
      :class:`~optuna.storages.RDBStorage`. The table setup is retried with backoff, so that
      many workers can start at once against a fresh database.
    * ``journal:PATH``: :class:`~optuna.storages.JournalStorage` on a
      :class:`~optuna.storages.journal.JournalFileBackend` at ``PATH``.
    * ``redis://HOST:PORT/DB`` (optionally ``?prefix=NAME`` to keep several journals in one
      database): :class:`~optuna.storages.JournalStorage` on a
      :class:`~optuna.storages.journal.JournalRedisBackend`.
    * ``grpc://HOST:PORT``: :class:`~optuna.storages.GrpcStorageProxy` to a server started
      with :func:`optuna.storages.run_grpc_proxy_server`.

    Args:
        url: The storage URL.
        heartbeat_interval: Seconds between the heartbeats a running trial records; RDB only.
            Defaults to ``None`` (no heartbeat).
        grace_period: Seconds without heartbeat after which a running trial is failed; RDB
            only. Defaults to ``None`` (twice ``heartbeat_interval``).

    Returns:
        The storage.

    Raises:
        ValueError: If the URL names no known storage, or a heartbeat is requested on a
            storage other than RDB.
        sqlalchemy.exc.SQLAlchemyError: If the database stays unreachable or broken through
            every attempt.
    """
    kind = storage_kind(url)
    if kind != "rdb" and (heartbeat_interval is not None or grace_period is not None):
        raise ValueError(
            f"Heartbeats need an RDB storage (an SQLAlchemy URL), but {mask_url(url)!r} is a "
            f"{kind} storage. Drop --heartbeat-interval and --grace-period, and fail the "
            "trials of dead workers with `optuna-fractal fail-stale` instead."
        )
    if kind == "rdb":
        return _rdb_storage(url, heartbeat_interval, grace_period)
    if kind == "journal-file":
        from optuna.storages.journal import JournalFileBackend

        path = url[len(JOURNAL_PREFIX) :]
        if not path:
            raise ValueError("The storage URL 'journal:' has no path. Use journal:PATH.")
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if kind == "journal-redis":
        return _redis_storage(url)
    return _grpc_storage(url)


def create_or_load_study(
    storage: BaseStorage,
    url: str,
    study_name: str,
    direction: StudyDirection | str,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> Study:
    """Create the study, or load it if another worker created it first.

    Raises:
        ValueError: If the existing study optimises in the other direction or has several
            objectives.
    """

    def create() -> Study:
        return optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction=direction,
            sampler=sampler,
            load_if_exists=True,
        )

    study = _with_retries(f"Creating study {study_name!r}", url, create)
    expected = StudyDirection[direction.upper()] if isinstance(direction, str) else direction
    if study._is_multi_objective():
        raise ValueError(
            f"Study {study_name!r} has {len(study.directions)} objectives; the workers run "
            "single-objective studies. Choose another study name."
        )
    if study.direction != expected:
        raise ValueError(
            f"Study {study_name!r} already exists with direction "
            f"{study.direction.name.lower()}, but this worker was asked to "
            f"{expected.name.lower()}. Pass --direction {study.direction.name.lower()}, or "
            "choose another study name."
        )
    return study
