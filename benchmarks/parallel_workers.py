"""Worker scaling: wall time to a fixed budget with 1, 2, 4 and 8 worker processes.

Every configuration starts its workers as ``optuna-fractal run`` processes on one fresh study
in a shared storage (PostgreSQL by default) and waits for all of them to exit. The objective is
Branin plus a sleep (``OPTUNA_FRACTAL_OBJECTIVE_SLEEP``, 0.5 s by default) that simulates an
expensive trial. On a machine with fewer cores than workers, the sleeping workers still
overlap, so the scaling measures the coordination, not the CPU count.

Run from a checkout::

    python -m benchmarks.parallel_workers --storage postgresql+psycopg2://postgres@127.0.0.1/test

It prints a table and writes a CSV with the columns ``workers``, ``wall_seconds``,
``final_regret``, ``storage`` and ``sampler``, followed by ``study_seconds`` and the settings of
each row. ``wall_seconds`` runs from starting the first worker process to the exit of the last;
``study_seconds`` from the start of the first trial to the end of the last, which leaves out
the start-up of the processes (importing Optuna takes seconds when many processes share few
cores). The worker logs go to a folder next to the CSV.
"""

from __future__ import annotations

from benchmarks._threads import set_thread_variables


# Before numpy is imported here or in the worker processes, which inherit the variables.
set_thread_variables()

import argparse  # noqa: E402
import csv  # noqa: E402
from dataclasses import asdict  # noqa: E402
from dataclasses import dataclass  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from optuna_fractal._storages import open_storage  # noqa: E402
from optuna_fractal._storages import storage_kind  # noqa: E402
from optuna_fractal._urls import mask_url  # noqa: E402
from optuna_fractal.testing_objectives import branin  # noqa: E402
from optuna_fractal.testing_objectives import SLEEP_VARIABLE  # noqa: E402


DEFAULT_STORAGE = os.environ.get(
    "OPTUNA_FRACTAL_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
DEFAULT_OUTPUT = Path("results") / "parallel_workers.csv"
OBJECTIVE = "optuna_fractal.testing_objectives:branin"
COLUMNS = (
    "workers",
    "wall_seconds",
    "final_regret",
    "storage",
    "sampler",
    "study_seconds",
    "budget",
    "objective_sleep",
    "trials",
    "failed_trials",
    "repeat",
)
# Seconds one configuration may take before its workers are killed and the run fails.
RUN_TIMEOUT = 1800.0


@dataclass
class Row:
    """One measured configuration; the fields are the CSV columns."""

    workers: int
    wall_seconds: float
    final_regret: float
    storage: str
    sampler: str
    study_seconds: float
    budget: int
    objective_sleep: float
    trials: int
    failed_trials: int
    repeat: int


def _storage_label(url: str) -> str:
    kind = storage_kind(url)
    if kind != "rdb":
        return kind
    import sqlalchemy.engine

    return sqlalchemy.engine.make_url(url).get_backend_name()


def run_configuration(
    url: str, sampler: str, n_workers: int, budget: int, sleep: float, log_dir: Path
) -> tuple[float, optuna.Study]:
    """Run ``n_workers`` worker processes to ``budget`` trials; return the wall time and study.

    The wall time runs from starting the first process to the exit of the last, so it includes
    each worker's start-up (importing Optuna, about 1 to 2 s).
    """
    study_name = f"parallel-{sampler}-{n_workers}-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, **{SLEEP_VARIABLE: str(sleep)})
    command = [
        sys.executable,
        "-m",
        "optuna_fractal.cli",
        "run",
        "--storage",
        url,
        "--study-name",
        study_name,
        "--sampler",
        sampler,
        "--objective",
        OBJECTIVE,
        "--n-trials",
        str(budget),
        "--seed",
        "0",
        "--no-progress-bar",
    ]
    start = time.perf_counter()
    processes = []
    logs = []
    for index in range(n_workers):
        log = open(log_dir / f"{study_name}-{index}.log", "wb")
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [*command, "--worker-index", str(index)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
    try:
        deadline = start + RUN_TIMEOUT
        codes = [p.wait(timeout=max(1.0, deadline - time.perf_counter())) for p in processes]
    finally:
        for process in processes:
            process.kill()
        for log in logs:
            log.close()
    wall = time.perf_counter() - start
    if any(code != 0 for code in codes):
        raise RuntimeError(
            f"A worker of {study_name} exited with status {codes}; see the logs in {log_dir}."
        )
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    return wall, study


def measure(
    url: str,
    samplers: list[str],
    worker_counts: list[int],
    budget: int,
    sleep: float,
    repeats: int,
    log_dir: Path,
) -> list[Row]:
    rows = []
    label = _storage_label(url)
    for sampler in samplers:
        for repeat in range(repeats):
            for n_workers in worker_counts:
                wall, study = run_configuration(url, sampler, n_workers, budget, sleep, log_dir)
                trials = study.get_trials(deepcopy=False)
                first_start = min(t.datetime_start for t in trials if t.datetime_start)
                last_end = max(t.datetime_complete for t in trials if t.datetime_complete)
                row = Row(
                    workers=n_workers,
                    wall_seconds=round(wall, 2),
                    final_regret=study.best_value - branin.f_opt,
                    storage=label,
                    sampler=sampler,
                    study_seconds=round((last_end - first_start).total_seconds(), 2),
                    budget=budget,
                    objective_sleep=sleep,
                    trials=len(trials),
                    failed_trials=sum(1 for t in trials if t.state == TrialState.FAIL),
                    repeat=repeat,
                )
                optuna.delete_study(study_name=study.study_name, storage=study._storage)
                print(_format_row(row), flush=True)
                rows.append(row)
    return rows


def _format_row(row: Row) -> str:
    return (
        f"| {row.sampler:>7} | {row.workers:>7} | {row.wall_seconds:>8.1f} | "
        f"{row.study_seconds:>9.1f} | {row.final_regret:>12.3e} | {row.trials:>6} | "
        f"{row.storage} |"
    )


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid list of integers {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    """Run the worker-scaling benchmark; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.parallel_workers",
        description="Wall time to a fixed budget with 1, 2, 4 and 8 worker processes.",
    )
    parser.add_argument(
        "--storage", default=DEFAULT_STORAGE, help="Storage URL. Default: local PostgreSQL."
    )
    parser.add_argument(
        "--samplers",
        default="soo",
        help="Comma-separated samplers of `optuna-fractal run`. Default: soo.",
    )
    parser.add_argument(
        "--workers", type=_int_list, default=[1, 2, 4, 8], help="Default: 1,2,4,8."
    )
    parser.add_argument("--budget", type=int, default=64, help="Trials per run. Default: 64.")
    parser.add_argument(
        "--sleep", type=float, default=0.5, help="Seconds each evaluation sleeps. Default: 0.5."
    )
    parser.add_argument("--repeats", type=int, default=1, help="Runs per setting. Default: 1.")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"CSV path. Default: {DEFAULT_OUTPUT}."
    )
    args = parser.parse_args(argv)
    samplers = [name for name in args.samplers.split(",") if name]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(
        f"Storage {mask_url(args.storage)}, budget {args.budget} trials, objective Branin + "
        f"{args.sleep} s sleep, {os.cpu_count()} CPU cores."
    )
    print("| sampler | workers | wall [s] | study [s] | final regret | trials | storage |")
    print("|--------:|--------:|---------:|----------:|-------------:|-------:|---------|")
    log_dir = args.output.parent / f"{args.output.stem}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rows = measure(
        args.storage, samplers, args.workers, args.budget, args.sleep, args.repeats, log_dir
    )
    write_csv(rows, args.output)
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
