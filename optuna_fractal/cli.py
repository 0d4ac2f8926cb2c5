"""The ``optuna-fractal`` command: a worker process of a study shared through a storage.

Start the same ``optuna-fractal run`` command many times (cluster jobs, a job array, several
shells) against one storage: the workers share the study, each cell of the partition tree is
evaluated by one worker, and together they stop at ``--n-trials`` results. A worker can be
killed at any moment; see ``docs/workers.md`` for how its trial is failed and re-run.

Subcommands:

* ``run``: run trials of a study until the study-wide budget is met.
* ``fail-stale``: fail RUNNING trials older than a threshold (the dead workers' trials) on a
  storage without heartbeat.
* ``best``: print the best trial of a study.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study

from optuna_fractal._storages import create_or_load_study
from optuna_fractal._storages import open_storage
from optuna_fractal._storages import storage_kind
from optuna_fractal._urls import mask_url
from optuna_fractal._worker import describe_stop
from optuna_fractal._worker import StopReason
from optuna_fractal._worker import Worker
from optuna_fractal._worker import WorkerTerminated


# Named explicitly: under `python -m optuna_fractal.cli`, __name__ is "__main__".
_logger = optuna.logging.get_logger("optuna_fractal.cli")

SAMPLERS = ("soo", "bamsoo", "bo", "tpe", "gp", "random", "lhs")
STORAGE_VARIABLE = "OPTUNA_FRACTAL_STORAGE"
DASHBOARD_PORT = 8080

# Exit statuses besides 0 (success) and 2 (invalid arguments, from argparse).
EXIT_ERROR = 1
# 128 + SIGTERM, what a shell reports for a process ended by SIGTERM; also after SIGINT.
EXIT_TERMINATED = 143


class CommandError(Exception):
    """A problem the user can fix; printed without a traceback."""


# Objective and search space.


class _Objective:
    """The objective a worker runs, with the search space and direction it declares."""

    def __init__(
        self,
        function: Callable[[optuna.Trial], Any],
        search_space: dict[str, BaseDistribution] | None,
        direction: str | None,
        label: str,
    ) -> None:
        self.function = function
        self.search_space = search_space
        self.direction = direction
        self.label = label


def _describe(function: Any, label: str) -> _Objective:
    search_space = getattr(function, "search_space", None)
    if search_space is not None and not isinstance(search_space, dict):
        raise CommandError(
            f"The objective {label} has a search_space attribute of type "
            f"{type(search_space).__name__}; it must be a dict of Optuna distributions."
        )
    direction = getattr(function, "direction", None)
    if direction is not None:
        direction = str(getattr(direction, "name", direction)).lower()
    return _Objective(function, search_space, direction, label)


def load_objective(spec: str) -> _Objective:
    """Import ``MODULE:CALLABLE`` (the callable may be a dotted attribute path).

    The current directory is searched first, as ``python -m`` would, so that an objective
    module next to the job script is found.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise CommandError(
            f"Invalid --objective {spec!r}. Use MODULE:CALLABLE, e.g. "
            "optuna_fractal.testing_objectives:branin."
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise CommandError(
            f"Cannot import the objective module {module_name!r} ({error}). Check the name "
            "and that the module is on PYTHONPATH or in the current directory."
        ) from error
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CommandError(
                f"Module {module_name!r} has no attribute {attribute!r} (from --objective "
                f"{spec!r})."
            ) from None
    if not callable(target):
        raise CommandError(
            f"--objective {spec!r} names a {type(target).__name__}, not a callable."
        )
    return _describe(target, spec)


def load_config_objective(config: str) -> _Objective:
    """Build the LLM objective from a config file or a bundled config name such as cpu-tiny."""
    try:
        objectives = importlib.import_module("optuna_fractal_objectives")
    except ImportError as error:
        raise CommandError(
            f"--config needs the package optuna_fractal_objectives, which cannot be imported "
            f"({error}). Install optuna-fractal with the llm extra."
        ) from error
    path = config
    if not os.path.exists(config):
        config_path = getattr(objectives, "config_path", None)
        if config_path is None:
            raise CommandError(f"The config file {config!r} does not exist.")
        try:
            path = str(config_path(config))
        except (KeyError, ValueError, FileNotFoundError) as error:
            raise CommandError(
                f"{config!r} is neither a config file nor a bundled config ({error})."
            ) from error
    return _describe(objectives.build_objective(path), f"config {path}")


def resolve_direction(requested: str | None, objective: _Objective) -> str:
    if requested is None:
        return objective.direction or "minimize"
    if objective.direction is not None and objective.direction != requested:
        raise CommandError(
            f"--direction {requested} contradicts the objective {objective.label}, which "
            f"declares direction {objective.direction}. Drop --direction."
        )
    return requested


# Samplers.


def worker_seed(seed: int | None, worker_index: int | None) -> int | None:
    """Return the seed of this worker's sampler.

    Workers given one ``--seed`` must not draw the same random numbers, or every random,
    TPE or GP worker proposes the same points. Worker ``i`` uses ``seed + i``; without
    ``--worker-index`` the seed is mixed with the host name and process id.
    """
    if seed is None:
        return None
    if worker_index is not None:
        return seed + worker_index
    import zlib

    import numpy as np

    host = zlib.crc32(socket.gethostname().encode())
    entropy = [seed % 2**32, seed // 2**32 % 2**32, host, os.getpid()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _fractal_attribute(name: str, sampler: str) -> Any:
    module = importlib.import_module("optuna_fractal")
    try:
        return getattr(module, name)
    except AttributeError:
        raise CommandError(
            f"--sampler {sampler} needs optuna_fractal.{name}, which this version of "
            f"optuna-fractal ({getattr(module, '__version__', 'unknown')}) does not have."
        ) from None


def build_sampler(
    name: str,
    *,
    seed: int | None,
    shared_seed: int | None,
    search_space: dict[str, BaseDistribution] | None,
    n_trials: int,
    decision_timeout: float | None,
) -> BaseSampler:
    """Build the sampler ``name`` for one worker.

    Args:
        name: One of :data:`SAMPLERS`.
        seed: This worker's seed (see :func:`worker_seed`).
        shared_seed: The seed every worker shares; the LHS design must be the same in all.
        search_space: The objective's search space, if it declares one.
        n_trials: The study's budget; the number of LHS design points.
        decision_timeout: ``decision_timeout`` of the partition samplers, ``None`` for their
            default.
    """
    fractal_kwargs: dict[str, Any] = {"search_space": search_space, "seed": seed}
    if decision_timeout is not None:
        fractal_kwargs["decision_timeout"] = decision_timeout
    if name == "soo":
        return _fractal_attribute("SOOSampler", name)(**fractal_kwargs)
    if name == "bamsoo":
        return _fractal_attribute("BaMSOOSampler", name)(**fractal_kwargs)
    if name == "lhs":
        factory = _fractal_attribute("LHSSampler", name)
        return factory(n_points=n_trials, seed=shared_seed, search_space=search_space)
    if name == "bo":
        # The shared seed gives every worker the same Latin hypercube start-up design; pending
        # trials of other workers keep BoTorch from proposing the same point twice.
        factory = _fractal_attribute("bo_baseline", name)
        return factory(seed=shared_seed, consider_running_trials=True)
    if name == "tpe":
        # The constant liar keeps parallel workers from proposing the same point.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise CommandError(f"Unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}.")


# Output.


def dashboard_command(url: str) -> str:
    """Return the optuna-dashboard command line for the storage at ``url``, password masked."""
    kind = storage_kind(url)
    if kind == "journal-file":
        target = url[len("journal:") :]
    elif kind == "grpc":
        return "optuna-dashboard cannot read a gRPC proxy; point it at the proxy's own storage."
    else:
        target = mask_url(url)
    return f"optuna-dashboard --host 127.0.0.1 --port {DASHBOARD_PORT} '{target}'"


def print_best(study: Study) -> None:
    try:
        best = study.best_trial
    except ValueError:
        print(f"Study {study.study_name!r} has no completed trial yet.")
        return
    print(
        f"Best trial of study {study.study_name!r}: number {best.number}, value {best.value!r}, "
        f"params {best.params}"
    )


# Subcommands.


def _open(args: argparse.Namespace, **kwargs: Any) -> Any:
    if not args.storage:
        raise CommandError(
            f"No storage given. Pass --storage URL or set {STORAGE_VARIABLE} (the variable "
            "keeps a password off the command line, where other users of the machine see it)."
        )
    try:
        return open_storage(args.storage, **kwargs)
    except ImportError as error:
        raise CommandError(
            f"Cannot open {mask_url(args.storage)}: {error}. Install the database driver "
            "(optuna-fractal[postgres], [mysql] or [redis])."
        ) from error


def _load_study(args: argparse.Namespace) -> Study:
    storage = _open(args)
    try:
        return optuna.load_study(study_name=args.study_name, storage=storage)
    except KeyError:
        raise CommandError(
            f"Study {args.study_name!r} not found in {mask_url(args.storage)}."
        ) from None


def _dashboard_callbacks(every: int, sampler: str) -> list[Any]:
    if every <= 0:
        return []
    if sampler not in ("soo", "bamsoo"):
        raise CommandError(
            f"--dashboard-every draws the partition tree, which --sampler {sampler} does not "
            "build. Use it with --sampler soo or bamsoo."
        )
    from optuna_fractal.visualization import DashboardCallback

    try:
        return [DashboardCallback(every_n_trials=every)]
    except ImportError as error:
        raise CommandError(
            f"--dashboard-every needs optuna-dashboard and plotly ({error}). Install "
            "optuna-fractal[dashboard]."
        ) from error


def command_run(args: argparse.Namespace) -> int:
    # Everything that can be checked without the storage is checked first.
    if args.grace_period is not None and args.heartbeat_interval is None:
        raise CommandError(
            f"--grace-period {args.grace_period} has no effect without --heartbeat-interval. "
            "Add --heartbeat-interval S (for example 60) to fail the trials of killed workers."
        )
    if args.config is not None:
        objective = load_config_objective(args.config)
    else:
        objective = load_objective(args.objective)
    direction = resolve_direction(args.direction, objective)
    callbacks = _dashboard_callbacks(args.dashboard_every, args.sampler)
    seed = worker_seed(args.seed, args.worker_index)
    sampler = build_sampler(
        args.sampler,
        seed=seed,
        shared_seed=args.seed,
        search_space=objective.search_space,
        n_trials=args.n_trials,
        decision_timeout=args.decision_timeout,
    )

    storage = _open(
        args, heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period
    )
    study = create_or_load_study(storage, args.storage, args.study_name, direction, sampler)
    _logger.info(
        f"Worker {socket.gethostname()}:{os.getpid()} joins study {args.study_name!r} on "
        f"{mask_url(args.storage)}: sampler {args.sampler} (seed {seed}), objective "
        f"{objective.label}, {direction}, budget {args.n_trials} trials."
    )

    worker = Worker(
        study,
        objective.function,
        args.n_trials,
        max_failed_trials=args.max_failed_trials,
        timeout=args.timeout,
        progress_bar=not args.no_progress_bar,
        callbacks=callbacks,
    )
    with _redirect_logs_to_bar(not args.no_progress_bar), _stop_on_signals(worker):
        result = worker.run()

    max_failed = args.max_failed_trials or args.n_trials
    _logger.info(describe_stop(result, args.n_trials, max_failed))
    print_best(study)
    print(f"Look at the study with: {dashboard_command(args.storage)}")
    if result.reason == StopReason.TERMINATED:
        return EXIT_TERMINATED
    return EXIT_ERROR if result.reason == StopReason.FAILURES else 0


def command_fail_stale(args: argparse.Namespace) -> int:
    from optuna_fractal._stale import fail_stale_trials

    study = _load_study(args)
    failed = fail_stale_trials(study, args.older_than)
    if failed:
        print(f"Failed {len(failed)} stale trials of study {args.study_name!r}: {failed}")
    else:
        print(f"No RUNNING trial of study {args.study_name!r} is older than {args.older_than} s.")
    return 0


def command_best(args: argparse.Namespace) -> int:
    print_best(_load_study(args))
    return 0


# Argument parsing.


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def _add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=os.environ.get(STORAGE_VARIABLE),
        metavar="URL",
        help=(
            "Storage URL: an SQLAlchemy URL (sqlite:///f.db, postgresql+psycopg2://user@host/db, "
            "mysql+pymysql://user@host/db), journal:PATH, redis://host:port/db[?prefix=NAME] "
            f"or grpc://host:port. Defaults to ${STORAGE_VARIABLE}. Keep passwords in "
            "~/.pgpass, ~/.my.cnf or the variable, not on the command line."
        ),
    )
    parser.add_argument("--study-name", required=True, metavar="NAME", help="Study name.")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optuna-fractal",
        description="Run or inspect Optuna studies shared by many worker processes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run trials until the study has --n-trials results",
        description=(
            "Run trials of a study until it has --n-trials COMPLETE or PRUNED trials, "
            "counted across every worker. Start this command once per worker; the first one "
            "creates the study."
        ),
    )
    _add_study_arguments(run)
    run.add_argument("--sampler", choices=SAMPLERS, default="soo", help="Default: soo.")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--objective",
        metavar="MODULE:CALLABLE",
        help=(
            "Objective function. A search_space attribute (dict of Optuna distributions) lets "
            "the partition samplers start all workers at once; a direction attribute sets the "
            "direction."
        ),
    )
    source.add_argument(
        "--config",
        metavar="FILE",
        help="LLM objective config (a YAML file, or a bundled name such as cpu-tiny).",
    )
    run.add_argument(
        "--n-trials",
        type=_positive_int,
        required=True,
        metavar="N",
        help=(
            "Budget of the whole study: COMPLETE and PRUNED trials across all workers. FAIL "
            "trials do not count (their cells are evaluated again)."
        ),
    )
    run.add_argument(
        "--direction",
        choices=("minimize", "maximize"),
        help="Default: the objective's direction attribute, else minimize.",
    )
    run.add_argument(
        "--seed",
        type=int,
        help="Seed. Each worker uses seed + --worker-index, or mixes it with its process id.",
    )
    run.add_argument(
        "--worker-index",
        type=_non_negative_int,
        metavar="I",
        help="Index of this worker (e.g. the job array index); makes its seed reproducible.",
    )
    run.add_argument(
        "--heartbeat-interval",
        type=_positive_int,
        metavar="S",
        help=(
            "Seconds between heartbeats of a running trial (RDB storages). Trials without "
            "heartbeat for --grace-period seconds are failed and their cells re-run."
        ),
    )
    run.add_argument(
        "--grace-period",
        type=_positive_int,
        metavar="S",
        help="Seconds without heartbeat before a trial is failed. Default: 2 x interval.",
    )
    run.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="Seconds after which this worker starts no new trial. Default: no limit.",
    )
    run.add_argument(
        "--max-failed-trials",
        type=_positive_int,
        metavar="M",
        help="Stop (exit status 1) once the study has M FAIL trials. Default: --n-trials.",
    )
    run.add_argument(
        "--decision-timeout",
        type=_positive_float,
        metavar="S",
        help=(
            "soo and bamsoo: seconds a trial may stay the oldest trial without a sampling "
            "decision before later trials fail it as a dead worker's trial. Default: 120."
        ),
    )
    run.add_argument(
        "--dashboard-every",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help=(
            "soo and bamsoo: save the partition and tree plots and a tree summary into the "
            "study for optuna-dashboard after every N trials of the study (the worker that "
            "runs trial number kN - 1 saves them). Default: 0 (never)."
        ),
    )
    run.add_argument("--no-progress-bar", action="store_true", help="Hide the progress bar.")
    run.set_defaults(handler=command_run)

    stale = commands.add_parser(
        "fail-stale",
        help="fail RUNNING trials older than a threshold (storages without heartbeat)",
        description=(
            "Fail the RUNNING trials that started more than --older-than seconds ago, so that "
            "the cells of dead workers are evaluated again. Safe only if no live trial runs "
            "that long: a live trial failed by this command wastes its evaluation."
        ),
    )
    _add_study_arguments(stale)
    stale.add_argument(
        "--older-than",
        type=_positive_float,
        required=True,
        metavar="SECONDS",
        help="Age threshold, from the trial's start; longer than any live trial can take.",
    )
    stale.set_defaults(handler=command_fail_stale)

    best = commands.add_parser("best", help="print the best trial of a study")
    _add_study_arguments(best)
    best.set_defaults(handler=command_best)
    return parser


# Loggers of this package and of the LLM objective (which reports building the base model).
_PACKAGE_LOGGERS = ("optuna_fractal", "optuna_fractal_objectives")


@contextlib.contextmanager
def _package_logging() -> Any:
    """Print this package's INFO logs in Optuna's format while the command runs.

    The previous settings come back afterwards, so that calling :func:`main` from Python
    leaves the caller's logging as it was.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(levelname).1s %(asctime)s] %(message)s"))
    loggers = [logging.getLogger(name) for name in _PACKAGE_LOGGERS]
    previous = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, (level, propagate) in zip(loggers, previous):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _redirect_logs_to_bar(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """Route log lines through tqdm while a progress bar is shown, so they do not tear it."""
    if not enabled:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm(
        loggers=[logging.getLogger(name) for name in ("optuna", *_PACKAGE_LOGGERS)]
    )


@contextlib.contextmanager
def _stop_on_signals(worker: Worker) -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :meth:`Worker.request_stop` while the worker runs.

    Schedulers send SIGTERM before they kill a job, for example SLURM at the time limit or on
    preemption. Failing the trial at once lets another worker re-run its cell without waiting
    for a heartbeat grace period.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        _logger.warning(
            f"Received {signal.Signals(signum).name}: the running trial, if any, is marked "
            "FAIL and the worker stops. Send it again to stop at once."
        )
        worker.request_stop()

    previous = {
        number: signal.signal(number, handle) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``optuna-fractal`` command.

    Args:
        argv: Arguments without the program name. Defaults to ``None`` (``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on an error, 2 on invalid arguments, 143 when
        stopped by SIGTERM or SIGINT.
    """
    args = make_parser().parse_args(argv)
    with _package_logging():
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args))
    except CommandError as error:
        _logger.error(str(error))
        return EXIT_ERROR
    except ValueError as error:
        _logger.error(mask_url(str(error)))
        return EXIT_ERROR
    except WorkerTerminated:
        _logger.warning("Stopped by a signal; the running trial is marked FAIL.")
        return EXIT_TERMINATED
    except Exception as error:
        import sqlalchemy.exc

        if isinstance(error, sqlalchemy.exc.SQLAlchemyError):
            _logger.error(
                f"Storage error on {mask_url(args.storage or '')}: {mask_url(str(error))}"
            )
            return EXIT_ERROR
        raise


if __name__ == "__main__":
    sys.exit(main())
