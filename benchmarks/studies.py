"""Dedicated comparisons, each printed as a table.

* :func:`soo_vs_direct`: SOO's regret beside ``scipy.optimize.direct`` (DIRECT and DIRECT-L) on
  Branin, Hartmann-6 and Rosenbrock-5 at 100 and 300 evaluations.
* :func:`side_by_side_timing`: per-trial sampler time of several samplers advanced in turn in one
  process (SOO beside TPE at 1,000 trials; BaMSOO beside the BO baseline and GPSampler at 200
  trials). Taking turns exposes every sampler to the same machine load, so the ratios hold even
  when the absolute times drift. Every other round runs the samplers in reverse order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import logging
from pathlib import Path

import pandas as pd

from benchmarks import analysis
from benchmarks.problems import make_problem
from benchmarks.problems import ProblemSpec
from benchmarks.profiles import RunCase
from benchmarks.results import append_rows
from benchmarks.results import completed_keys
from benchmarks.runner import prepare_process
from benchmarks.runner import RunTask
from benchmarks.runner import StudyStepper
from benchmarks.runner import to_rows
from benchmarks.samplers import get_entry
from benchmarks.suite import run_suite
from benchmarks.suite import task_key


logger = logging.getLogger("benchmarks")

SOO_DIRECT_SAMPLERS = ("soo", "direct", "direct-l")
SOO_DIRECT_BUDGETS = (100, 300)


def soo_direct_cases(budgets: Sequence[int], rosenbrock_instances: int = 3) -> list[RunCase]:
    """Branin and Hartmann-6 (deterministic, one case) and shifted Rosenbrock-5 instances.

    SOO and DIRECT are deterministic, so one seed per problem instance suffices.
    """
    cases = []
    for budget in budgets:
        cases.append(RunCase(ProblemSpec("branin", 2), 0, budget))
        cases.append(RunCase(ProblemSpec("hartmann6", 6), 0, budget))
        for instance in range(1, rosenbrock_instances + 1):
            cases.append(RunCase(ProblemSpec("rosenbrock", 5, instance), 0, budget))
    return cases


def soo_vs_direct(
    csv_path: Path,
    *,
    budgets: Sequence[int] = SOO_DIRECT_BUDGETS,
    samplers: Sequence[str] = SOO_DIRECT_SAMPLERS,
    jobs: int = 1,
    force: bool = False,
) -> pd.DataFrame:
    """Run (or resume) the SOO-versus-DIRECT runs and return the regret table.

    The table has one row per problem instance and budget (Branin and Hartmann-6 have one
    instance, Rosenbrock-5 three shifted ones) and the final regret of each sampler.
    """
    tasks = [
        RunTask(case.problem, name, case.seed, case.budget)
        for case in soo_direct_cases(budgets)
        for name in samplers
    ]
    run_suite(tasks, csv_path, jobs=jobs, force=force)
    frame = analysis.load_results(csv_path)
    finals = analysis.final_rows(frame[frame["sampler"].isin(samplers)])
    finals = finals[finals["budget"].isin(budgets)]
    table = finals.pivot_table(
        index=["problem", "dimension", "instance", "budget"],
        columns="sampler",
        values="regret",
        aggfunc="first",
    )
    for reference in ("direct", "direct-l"):
        if "soo" in table.columns and reference in table.columns:
            table[f"{reference} / soo"] = table[reference] / table["soo"]
    table = table.sort_index(level=["problem", "budget", "instance"])
    ratios = ["direct / soo", "direct-l / soo"]
    return table[[c for c in [*samplers, *ratios] if c in table.columns]]


@dataclass(frozen=True)
class TimingStudy:
    """A side-by-side timing comparison.

    Attributes:
        name: Name of the CSV file and of the study on the command line.
        samplers: Registry names of the samplers advanced in turn.
        trials: Evaluations per sampler.
        problem: The problem every sampler optimizes.
        windows: Trial windows ``(first, last)`` of the printed table, 1-based.
    """

    name: str
    samplers: tuple[str, ...]
    trials: int
    problem: ProblemSpec
    windows: tuple[tuple[int, int], ...]


def sampling_time_study(trials: int = 1000, problem: ProblemSpec | None = None) -> TimingStudy:
    """SOO beside TPE, by default 1,000 trials on shifted Rosenbrock-5."""
    return TimingStudy(
        "soo_tpe_time",
        ("soo", "tpe"),
        trials,
        problem or ProblemSpec("rosenbrock", 5, 1),
        _windows(trials, 5),
    )


def bamsoo_time_study(trials: int = 200, problem: ProblemSpec | None = None) -> TimingStudy:
    """BaMSOO beside the BO baseline and GPSampler, by default 200 trials on Hartmann-6."""
    return TimingStudy(
        "bamsoo_time",
        ("bamsoo", "bo", "gp"),
        trials,
        problem or ProblemSpec("hartmann6", 6),
        _windows(trials, 4),
    )


def _windows(trials: int, count: int) -> tuple[tuple[int, int], ...]:
    edges = [round(trials * i / count) for i in range(count + 1)]
    return tuple((edges[i] + 1, edges[i + 1]) for i in range(count) if edges[i + 1] > edges[i])


def side_by_side_timing(
    study: TimingStudy, csv_path: Path, *, seed: int = 0, force: bool = False
) -> pd.DataFrame:
    """Advance the study's samplers in turn in this process and return the timing table.

    Skips the run when ``csv_path`` already contains it complete for every sampler, unless
    ``force``. The table gives the median per-trial sampler time in milliseconds per trial
    window, the total sampler seconds and the final regret, and for BaMSOO the GP-scored cells.
    Rows ``"<sampler> / <first sampler>"`` give the time ratios.
    """
    tasks = [RunTask(study.problem, name, seed, study.trials) for name in study.samplers]
    done = completed_keys(csv_path)
    if force or not all(task_key(task) in done for task in tasks):
        _run_in_turn(tasks, csv_path)
    else:
        logger.info("Reusing the complete %s runs in %s.", study.name, csv_path)
    frame = analysis.load_results(csv_path)
    frame = frame[
        frame["sampler"].isin(study.samplers)
        & (frame["problem"] == study.problem.name)
        & (frame["dimension"] == study.problem.dimension)
        & (frame["instance"] == study.problem.instance)
        & (frame["seed"] == seed)
        & (frame["budget"] == study.trials)
    ]
    table = analysis.sampler_time_table(frame, study.windows)
    table = table.loc[[name for name in study.samplers if name in table.index]]
    time_columns = list(table.columns)
    finals = analysis.final_rows(frame).set_index("sampler")
    table["final regret"] = finals["regret"]
    if "bamsoo" in table.index:
        table["GP-scored cells"] = finals["gp_scored_nodes"]

    # Time ratios of every other sampler to the first one, measured in the same run.
    first = table.index[0]
    for name in list(table.index[1:]):
        table.loc[f"{name} / {first}", time_columns] = (
            table.loc[name, time_columns] / table.loc[first, time_columns]
        )
    return table


def _run_in_turn(tasks: Sequence[RunTask], csv_path: Path) -> None:
    entries = [get_entry(task.sampler) for task in tasks]
    for entry in entries:
        prepare_process(entry)
    problem = make_problem(tasks[0].problem)
    steppers = [
        StudyStepper(problem, entry, task.seed, task.budget) for task, entry in zip(tasks, entries)
    ]
    trials = tasks[0].budget
    for number in range(trials):
        order = steppers if number % 2 == 0 else steppers[::-1]
        for stepper in order:
            stepper.step()
        if (number + 1) % max(1, trials // 10) == 0:
            logger.info("%s: %d of %d trials done.", tasks[0].problem.label, number + 1, trials)
    for task, entry, stepper in zip(tasks, entries, steppers):
        append_rows(csv_path, to_rows(task, problem, entry, stepper.evaluations))
