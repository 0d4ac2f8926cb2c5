"""Named sets of runs: which problems, samplers, seeds and budgets.

A profile is a list of cases (problem, seed, budget) crossed with a list of samplers. Where a
profile pairs BBOB instances with seeds (instance ``i + 1`` with seed ``i``), every repetition
changes both the function's instance and the sampler's seed, as COCO uses instances for
repetitions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from benchmarks.problems import bbob_name
from benchmarks.problems import default_dimension
from benchmarks.problems import llm_available
from benchmarks.problems import ProblemSpec
from benchmarks.runner import RunTask
from benchmarks.samplers import DEFAULT_SAMPLERS
from benchmarks.samplers import get_entry


@dataclass(frozen=True)
class RunCase:
    """A problem, a seed and a budget; the profile runs every sampler on it."""

    problem: ProblemSpec
    seed: int
    budget: int


@dataclass(frozen=True)
class Profile:
    """A named benchmark configuration.

    Attributes:
        name: Profile name (``tiny``, ``quick`` or ``full``).
        description: One line shown by ``python -m benchmarks list``.
        cases: The problem, seed and budget of every run, before crossing with the samplers.
        samplers: Sampler registry names.
    """

    name: str
    description: str
    cases: tuple[RunCase, ...]
    samplers: tuple[str, ...] = DEFAULT_SAMPLERS

    def tasks(self, samplers: Iterable[str] | None = None) -> list[RunTask]:
        """Cross the cases with ``samplers`` (default: the profile's), skipping pairs that
        cannot run, i.e. DIRECT on a problem that is not a continuous box."""
        names = tuple(self.samplers if samplers is None else samplers)
        tasks = []
        for case in self.cases:
            for name in names:
                if get_entry(name).is_direct and not is_box_problem(case.problem):
                    continue
                tasks.append(RunTask(case.problem, name, case.seed, case.budget))
        return tasks


def is_box_problem(spec: ProblemSpec) -> bool:
    return spec.name.startswith("bbob-") or spec.name in (
        "branin",
        "hartmann6",
        "rosenbrock",
        "ackley",
    )


def paired_cases(
    name: str, dimension: int, repetitions: int, budget: int, first_seed: int = 0
) -> list[RunCase]:
    """Cases with instance ``r + 1`` and seed ``first_seed + r`` for ``r < repetitions``."""
    return [
        RunCase(ProblemSpec(name, dimension, r + 1), first_seed + r, budget)
        for r in range(repetitions)
    ]


def seeded_cases(spec: ProblemSpec, seeds: Iterable[int], budget: int) -> list[RunCase]:
    return [RunCase(spec, seed, budget) for seed in seeds]


# BBOB functions of the full profile, two from each of COCO's five groups: separable (1, 3),
# moderate conditioning (6, 8), high conditioning (10, 13), multimodal with global structure
# (15, 17) and multimodal with weak global structure (20, 21).
FULL_BBOB_FUNCTIONS = (1, 3, 6, 8, 10, 13, 15, 17, 20, 21)
FULL_HPO_PROBLEMS = ("hpobench-australian", "hpolib-naval_propulsion", "nasbench201-cifar10")
LLM_BUDGET = 20


def tiny_profile() -> Profile:
    return Profile(
        "tiny",
        "One 2-D BBOB problem, one seed, 12 evaluations per sampler: a smoke test (seconds).",
        tuple(paired_cases(bbob_name(8), 2, 1, 12)),
    )


def quick_profile() -> Profile:
    cases = paired_cases(bbob_name(8), 2, 3, 30) + paired_cases(bbob_name(21), 2, 3, 30)
    return Profile(
        "quick",
        "BBOB f8 and f21 in 2-D, 3 instance-seed pairs, 30 evaluations (minutes on 2 cores).",
        tuple(cases),
    )


def full_profile(repetitions: int = 5, budget: int = 100) -> Profile:
    cases: list[RunCase] = []
    for dimension in (2, 5, 10):
        for function_id in FULL_BBOB_FUNCTIONS:
            cases += paired_cases(bbob_name(function_id), dimension, repetitions, budget)
    seeds = range(repetitions)
    cases += seeded_cases(ProblemSpec("branin", 2), seeds, budget)
    cases += seeded_cases(ProblemSpec("hartmann6", 6), seeds, budget)
    cases += paired_cases("rosenbrock", 5, repetitions, budget)
    cases += paired_cases("ackley", 5, repetitions, budget)
    for name in FULL_HPO_PROBLEMS:
        cases += seeded_cases(ProblemSpec(name, default_dimension(name)), seeds, budget)
    # lora-mixed has three instances; repetitions cycle through them.
    cases += [RunCase(ProblemSpec("lora-mixed", 6, r % 3 + 1), r, budget) for r in seeds]
    if llm_available() is None:
        cases.append(RunCase(ProblemSpec("llm-cpu", default_dimension("llm-cpu")), 0, LLM_BUDGET))
    return Profile(
        "full",
        f"BBOB 2/5/10-D ({len(FULL_BBOB_FUNCTIONS)} functions), classic functions, tabular HPO, "
        f"lora-mixed and llm-cpu; {repetitions} repetitions, {budget} evaluations (hours).",
        tuple(cases),
    )


PROFILES = {"tiny": tiny_profile, "quick": quick_profile, "full": full_profile}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]()
    except KeyError:
        raise ValueError(f"Unknown profile {name!r}; choose from {', '.join(PROFILES)}.") from None
