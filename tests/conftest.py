"""Shared fixtures: real storages, including the database servers on 127.0.0.1.

Server tests fail, never skip, when their server cannot be reached: a green run must mean the
coordination protocol was checked against every storage. Deselect them on a machine without
the servers with ``python -m pytest -m "not server"``.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
import uuid

import optuna
import pytest


POSTGRES_URL = os.environ.get(
    "OPTUNA_FRACTAL_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("OPTUNA_FRACTAL_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("OPTUNA_FRACTAL_REDIS_URL", "redis://127.0.0.1:6379/0")

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _require_sqlalchemy_server(url: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any connection error means the same here.
        pytest.fail(
            f"Cannot reach the database server at {url.split('@')[-1]} ({error}). Start it, set "
            "the URL through OPTUNA_FRACTAL_POSTGRES_URL / OPTUNA_FRACTAL_MYSQL_URL, or deselect "
            'server tests with -m "not server".'
        )
    finally:
        engine.dispose()


def _require_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as error:  # noqa: BLE001
        pytest.fail(
            f"Cannot reach Redis at {url} ({error}). Start it, set OPTUNA_FRACTAL_REDIS_URL, or "
            'deselect server tests with -m "not server".'
        )


@pytest.fixture
def postgres_url() -> str:
    _require_sqlalchemy_server(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def mysql_url() -> str:
    _require_sqlalchemy_server(MYSQL_URL)
    return MYSQL_URL


@pytest.fixture
def redis_url() -> str:
    _require_redis(REDIS_URL)
    return REDIS_URL


def unique_study_name(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/study.db"


@pytest.fixture
def quiet_optuna() -> Iterator[None]:
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)
