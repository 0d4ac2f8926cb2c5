"""Run many tasks in worker processes, append each finished run to the CSV, skip finished runs.

Workers are started with the ``spawn`` method, so each is a fresh interpreter that inherits the
thread-count variables from the parent before it imports numpy. Only the parent writes the CSV,
so rows of different runs never interleave.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import concurrent.futures
from dataclasses import dataclass
import logging
import math
import multiprocessing
import os
from pathlib import Path
import time
import traceback
from typing import Any

from benchmarks import _threads
from benchmarks.results import append_rows
from benchmarks.results import completed_keys
from benchmarks.results import RunKey
from benchmarks.runner import run_task
from benchmarks.runner import RunTask
from benchmarks.samplers import get_entry


logger = logging.getLogger("benchmarks")


@dataclass
class TaskOutcome:
    """A finished task: its rows, or the error that stopped it."""

    task: RunTask
    rows: list[dict[str, Any]] | None
    error: str | None
    seconds: float


@dataclass
class SuiteSummary:
    """Counts of one suite invocation."""

    skipped: int
    finished: int
    failed: list[TaskOutcome]


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 2))


def check_jobs(jobs: int) -> int:
    """Validate ``jobs`` and cap it at the number of cores, with a warning."""
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}.")
    cores = os.cpu_count() or 1
    if jobs > cores:
        logger.warning(
            "--jobs %d exceeds the %d cores of this machine; using %d, so that processes do not "
            "share a core and distort the timings.",
            jobs,
            cores,
            cores,
        )
        return cores
    return jobs


def task_key(task: RunTask) -> RunKey:
    spec = task.problem
    return RunKey(spec.name, spec.dimension, spec.instance, task.sampler, task.seed, task.budget)


def expected_cost(task: RunTask) -> float:
    """Estimate a task's relative cost, so that the slowest tasks start first."""
    entry = get_entry(task.sampler)
    per_trial = 20.0 if entry.uses_torch else 1.0
    return per_trial * task.budget * (1.0 + task.problem.dimension / 5.0)


def execute_task(task: RunTask) -> TaskOutcome:
    """Run a task and catch its error, so that one failing run does not stop the others."""
    start = time.perf_counter()
    try:
        rows = run_task(task)
    except Exception:  # noqa: BLE001 - reported per task by the parent.
        return TaskOutcome(task, None, traceback.format_exc(), time.perf_counter() - start)
    return TaskOutcome(task, rows, None, time.perf_counter() - start)


def _init_worker() -> None:
    _threads.set_thread_variables()


def run_suite(
    tasks: Sequence[RunTask],
    csv_path: Path,
    *,
    jobs: int = 1,
    force: bool = False,
    on_outcome: Callable[[TaskOutcome], None] | None = None,
) -> SuiteSummary:
    """Run ``tasks`` (those not complete in ``csv_path`` unless ``force``) and append the rows.

    Args:
        tasks: The runs to do.
        csv_path: Results CSV; created if missing.
        jobs: Worker processes; 1 runs the tasks in this process. Defaults to 1.
        force: Run tasks again even if the CSV has them complete. Defaults to ``False``.
        on_outcome: Called in this process after each task, once its rows are written.
            Defaults to ``None``.
    """
    jobs = check_jobs(jobs)
    done = set() if force else completed_keys(csv_path)
    pending = [task for task in tasks if task_key(task) not in done]
    pending.sort(key=expected_cost, reverse=True)
    skipped = len(tasks) - len(pending)
    if skipped:
        logger.info("Skipping %d runs already complete in %s.", skipped, csv_path)
    logger.info(
        "Running %d runs with %d process(es); results go to %s.", len(pending), jobs, csv_path
    )

    failed: list[TaskOutcome] = []
    finished = 0

    def record(outcome: TaskOutcome) -> None:
        nonlocal finished
        finished += 1
        if outcome.rows is None:
            failed.append(outcome)
            logger.error(
                "[%d/%d] %s failed:\n%s", finished, len(pending), outcome.task.label, outcome.error
            )
        else:
            append_rows(csv_path, outcome.rows)
            logger.info(
                "[%d/%d] %s: final regret %s, %.1f s",
                finished,
                len(pending),
                outcome.task.label,
                _final_regret(outcome.rows),
                outcome.seconds,
            )
        if on_outcome is not None:
            on_outcome(outcome)

    if jobs == 1:
        for task in pending:
            record(execute_task(task))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_init_worker
        ) as pool:
            futures = [pool.submit(execute_task, task) for task in pending]
            try:
                for future in concurrent.futures.as_completed(futures):
                    record(future.result())
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return SuiteSummary(skipped=skipped, finished=finished - len(failed), failed=failed)


def _final_regret(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "n/a (no evaluations)"
    regret = rows[-1]["regret"]
    if regret == "":
        return "n/a"
    value = float(regret)
    return f"{value:.3g}" if math.isfinite(value) else "n/a"
