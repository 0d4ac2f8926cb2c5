"""Run one (problem, sampler, seed, budget) and time the sampler apart from the objective.

Optuna samplers run through the ask-and-tell interface on an in-memory study:
``study.ask(fixed_distributions=...)`` contains all of the sampler's work for a trial
(``sample_relative`` and the independent sampling of every parameter), and ``study.tell``
contains ``after_trial``. The objective runs between the two, so the three are timed apart.

DIRECT runs inside ``scipy.optimize.direct``. Its sampler time for an evaluation is the time
between the end of the previous evaluation and the start of this one.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import math
import time
from typing import Any
import uuid
import warnings

import optuna
from optuna.trial import TrialState

from benchmarks import _threads
from benchmarks.problems import BoxProblem
from benchmarks.problems import make_problem
from benchmarks.problems import Problem
from benchmarks.problems import ProblemSpec
from benchmarks.results import environment_columns
from benchmarks.results import format_float
from benchmarks.results import utc_timestamp
from benchmarks.samplers import get_entry
from benchmarks.samplers import SamplerEntry


GP_SCORED_NODES_KEY = "fractal:gp_scored_nodes"


@dataclass(frozen=True, order=True)
class RunTask:
    """One run: a problem, a sampler, a seed and a number of evaluations."""

    problem: ProblemSpec
    sampler: str
    seed: int
    budget: int

    @property
    def label(self) -> str:
        return f"{self.problem.label} {self.sampler} seed={self.seed} budget={self.budget}"


@dataclass
class Evaluation:
    """Measurements of one evaluation (times in seconds)."""

    state: str
    value: float
    ask_seconds: float
    tell_seconds: float
    objective_seconds: float
    elapsed_seconds: float
    timestamp: str
    gp_scored_nodes: int | None = None


class StudyStepper:
    """Advances one sampler on one problem by one evaluation per :meth:`step` call.

    Several steppers can be advanced in turn in one process, so that samplers are timed side by
    side under the same machine load.
    """

    def __init__(self, problem: Problem, entry: SamplerEntry, seed: int, budget: int) -> None:
        if entry.build is None:
            raise ValueError(f"{entry.name} is not an Optuna sampler; use run_direct().")
        self.problem = problem
        self.entry = entry
        self.seed = seed
        self.budget = budget
        # NopPruner: Optuna's default MedianPruner would prune the LLM objective's trials.
        self.study = optuna.create_study(
            sampler=entry.build(seed, budget),
            pruner=optuna.pruners.NopPruner(),
            direction="minimize",
        )
        self.evaluations: list[Evaluation] = []
        self._start = time.perf_counter()

    @property
    def done(self) -> bool:
        return len(self.evaluations) >= self.budget

    def step(self) -> Evaluation:
        if not self.evaluations:
            self._start = time.perf_counter()
        t0 = time.perf_counter()
        trial = self.study.ask(fixed_distributions=self.problem.search_space)
        t1 = time.perf_counter()

        state, value = TrialState.COMPLETE, math.nan
        try:
            value = self.problem.evaluate_trial(trial)
        except Exception as error:  # noqa: BLE001 - a failed evaluation is a result, not a crash.
            optuna.logging.get_logger(__name__).warning(
                "Trial %d of %s failed: %r", trial.number, self.entry.name, error
            )
            state = TrialState.FAIL
        if not math.isfinite(value):
            state = TrialState.FAIL
        t2 = time.perf_counter()

        if state == TrialState.COMPLETE:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=TrialState.FAIL)
        t3 = time.perf_counter()

        scored = self.study.user_attrs.get(GP_SCORED_NODES_KEY)
        evaluation = Evaluation(
            state=state.name,
            value=value if state == TrialState.COMPLETE else math.nan,
            ask_seconds=t1 - t0,
            tell_seconds=t3 - t2,
            objective_seconds=t2 - t1,
            elapsed_seconds=t3 - self._start,
            timestamp=utc_timestamp(),
            gp_scored_nodes=None if scored is None else int(scored),
        )
        self.evaluations.append(evaluation)
        return evaluation


class _BudgetReached(Exception):
    pass


def run_direct(problem: Problem, entry: SamplerEntry, budget: int) -> list[Evaluation]:
    """Run ``scipy.optimize.direct`` on a box problem for exactly ``budget`` evaluations.

    DIRECT is deterministic, so the seed does not enter. ``maxfun`` is only approximate in
    scipy, so the wrapped function raises after ``budget`` evaluations to stop it exactly.

    Raises:
        ValueError: The problem is not a continuous box.
    """
    import numpy as np
    import scipy.optimize

    if not isinstance(problem, BoxProblem):
        raise ValueError(
            f"{entry.name} needs a continuous box problem; {problem.spec.name} is not one."
        )
    assert entry.direct_options is not None
    evaluations: list[Evaluation] = []
    start = time.perf_counter()
    previous_end = start

    def function(x: np.ndarray) -> float:
        nonlocal previous_end
        if len(evaluations) >= budget:
            raise _BudgetReached
        t0 = time.perf_counter()
        value = float(problem.function(x))
        t1 = time.perf_counter()
        evaluations.append(
            Evaluation(
                state=TrialState.COMPLETE.name,
                value=value,
                ask_seconds=t0 - previous_end,
                tell_seconds=0.0,
                objective_seconds=t1 - t0,
                elapsed_seconds=t1 - start,
                timestamp=utc_timestamp(),
            )
        )
        previous_end = t1
        return value

    try:
        scipy.optimize.direct(function, problem.bounds, maxfun=budget, **entry.direct_options)
    except _BudgetReached:
        pass
    return evaluations


def prepare_process(entry: SamplerEntry) -> None:
    """Quiet Optuna's per-trial logs, and load torch with one thread for torch samplers."""
    _threads.set_thread_variables()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    if entry.uses_torch or _threads.torch_is_loaded():
        _threads.limit_torch_threads()


def run_task(task: RunTask) -> list[dict[str, Any]]:
    """Run one task in this process and return its CSV rows."""
    entry = get_entry(task.sampler)
    prepare_process(entry)
    problem = make_problem(task.problem)
    if entry.is_direct:
        evaluations = run_direct(problem, entry, task.budget)
    else:
        stepper = StudyStepper(problem, entry, task.seed, task.budget)
        while not stepper.done:
            stepper.step()
        evaluations = stepper.evaluations
    return to_rows(task, problem, entry, evaluations)


def to_rows(
    task: RunTask, problem: Problem, entry: SamplerEntry, evaluations: list[Evaluation]
) -> list[dict[str, Any]]:
    """Turn a run's evaluations into CSV rows with best-so-far, regret and the environment."""
    run_id = uuid.uuid4().hex
    common = {
        "run_id": run_id,
        "problem": task.problem.name,
        "family": problem.family,
        "dimension": task.problem.dimension,
        "instance": task.problem.instance,
        "sampler": entry.name,
        "sampler_params": json.dumps(entry.params(task.budget), sort_keys=True),
        "seed": task.seed,
        "budget": task.budget,
        "f_opt": format_float(problem.f_opt),
        "run_rows": len(evaluations),
        **environment_columns(),
    }
    rows = []
    best = math.inf
    for number, evaluation in enumerate(evaluations):
        if evaluation.state == TrialState.COMPLETE.name and evaluation.value < best:
            best = evaluation.value
        best_so_far = best if math.isfinite(best) else None
        regret = None
        if best_so_far is not None and problem.f_opt is not None:
            regret = best_so_far - problem.f_opt
        rows.append(
            {
                **common,
                "trial": number,
                "state": evaluation.state,
                "value": format_float(evaluation.value),
                "best_so_far": format_float(best_so_far),
                "regret": format_float(regret),
                "ask_seconds": format_float(evaluation.ask_seconds),
                "tell_seconds": format_float(evaluation.tell_seconds),
                "sampler_seconds": format_float(evaluation.ask_seconds + evaluation.tell_seconds),
                "objective_seconds": format_float(evaluation.objective_seconds),
                "elapsed_seconds": format_float(evaluation.elapsed_seconds),
                "timestamp": evaluation.timestamp,
                "gp_scored_nodes": ""
                if evaluation.gp_scored_nodes is None
                else evaluation.gp_scored_nodes,
            }
        )
    return rows
