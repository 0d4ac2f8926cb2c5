"""Registry of the samplers the suite compares.

Every entry builds a fresh sampler for one run from a seed and the run's budget. An entry whose
code is not importable (a sampler not merged yet, a missing optional package) reports why
through :meth:`SamplerEntry.unavailable_reason`, so that the rest of the suite still runs.

``direct`` and ``direct-l`` are not Optuna samplers: the runner calls
``scipy.optimize.direct`` on the problem's box and records its evaluations itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
import importlib
from typing import Any

from optuna.samplers import BaseSampler


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler of the suite.

    Attributes:
        name: Registry name used on the command line and in the CSV.
        label: Name shown in plots and tables.
        build: Function ``(seed, budget) -> sampler``; ``None`` for the DIRECT references.
        params: Settings recorded in the CSV, besides the seed.
        uses_torch: Whether the sampler runs torch, so that the runner loads torch and caps its
            threads before the first trial (the import then stays out of the first trial's time).
        requires: ``(module, attribute)`` pairs that must be importable; ``attribute`` may be
            empty.
        direct_options: Keyword arguments of ``scipy.optimize.direct`` for the DIRECT entries.
    """

    name: str
    label: str
    build: Callable[[int, int], BaseSampler] | None
    params: Callable[[int], dict[str, Any]] = field(default=lambda budget: {})
    uses_torch: bool = False
    requires: tuple[tuple[str, str], ...] = ()
    direct_options: dict[str, Any] | None = None

    @property
    def is_direct(self) -> bool:
        return self.direct_options is not None

    def unavailable_reason(self) -> str | None:
        """Return why this sampler cannot run here, or ``None`` if it can."""
        for module_name, attribute in self.requires:
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                return f"{self.name}: cannot import {module_name} ({error})"
            if attribute and not hasattr(module, attribute):
                version = getattr(module, "__version__", "unknown version")
                return (
                    f"{self.name}: {module_name}.{attribute} is missing ({module_name} "
                    f"{version} does not define it yet)"
                )
        return None


def _fractal(attribute: str) -> Any:
    return getattr(importlib.import_module("optuna_fractal"), attribute)


def _build_soo(seed: int, budget: int) -> BaseSampler:
    return _fractal("SOOSampler")(seed=seed)


def _build_bamsoo(seed: int, budget: int) -> BaseSampler:
    return _fractal("BaMSOOSampler")(seed=seed)


def _build_lhs(seed: int, budget: int) -> BaseSampler:
    return _fractal("LHSSampler")(n_points=budget, seed=seed)


def _build_bo(seed: int, budget: int) -> BaseSampler:
    return _fractal("bo_baseline")(seed=seed)


def _build_gp(seed: int, budget: int) -> BaseSampler:
    from optuna.samplers import GPSampler

    return GPSampler(seed=seed)


def _build_tpe(seed: int, budget: int) -> BaseSampler:
    from optuna.samplers import TPESampler

    return TPESampler(seed=seed)


def _build_cmaes(seed: int, budget: int) -> BaseSampler:
    from optuna.samplers import CmaEsSampler

    return CmaEsSampler(seed=seed)


def _build_random(seed: int, budget: int) -> BaseSampler:
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=seed)


# Setting the tolerances to 0 and maxiter high leaves the budget as DIRECT's only stopping rule.
_DIRECT_STOPPING = {"maxiter": 1_000_000, "vol_tol": 0.0, "len_tol": 0.0}

REGISTRY: dict[str, SamplerEntry] = {
    entry.name: entry
    for entry in (
        SamplerEntry(
            "soo",
            "SOO",
            _build_soo,
            params=lambda budget: {"k": 3},
            requires=(("optuna_fractal", "SOOSampler"),),
        ),
        SamplerEntry(
            "bamsoo",
            "BaMSOO",
            _build_bamsoo,
            params=lambda budget: {"k": 3, "eta": 0.5},
            uses_torch=True,
            requires=(("optuna_fractal", "BaMSOOSampler"),),
        ),
        SamplerEntry(
            "lhs",
            "LHS",
            _build_lhs,
            params=lambda budget: {"n_points": budget},
            requires=(("optuna_fractal", "LHSSampler"),),
        ),
        SamplerEntry(
            "bo",
            "BO baseline (BoTorch)",
            _build_bo,
            params=lambda budget: {"n_startup_trials": 10},
            uses_torch=True,
            requires=(
                ("optuna_fractal", "bo_baseline"),
                ("botorch", ""),
                ("optuna_integration", ""),
            ),
        ),
        SamplerEntry("gp", "GPSampler", _build_gp, uses_torch=True, requires=(("torch", ""),)),
        SamplerEntry("tpe", "TPESampler", _build_tpe),
        SamplerEntry("cmaes", "CmaEsSampler", _build_cmaes, requires=(("cmaes", ""),)),
        SamplerEntry("random", "RandomSampler", _build_random),
        SamplerEntry(
            "direct",
            "DIRECT (scipy)",
            None,
            params=lambda budget: {"locally_biased": False, "maxfun": budget},
            direct_options={"locally_biased": False, **_DIRECT_STOPPING},
        ),
        SamplerEntry(
            "direct-l",
            "DIRECT-L (scipy)",
            None,
            params=lambda budget: {"locally_biased": True, "maxfun": budget},
            direct_options={"locally_biased": True, **_DIRECT_STOPPING},
        ),
    )
}

# The samplers of a default run. direct-l is left to the SOO-versus-DIRECT study.
DEFAULT_SAMPLERS = ("soo", "bamsoo", "lhs", "bo", "gp", "tpe", "cmaes", "random", "direct")


def get_entry(name: str) -> SamplerEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown sampler {name!r}; choose from {', '.join(REGISTRY)}.") from None


def split_available(names: list[str] | tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """Split sampler names into the runnable ones and a ``name -> reason`` map of the others."""
    available: list[str] = []
    missing: dict[str, str] = {}
    for name in names:
        reason = get_entry(name).unavailable_reason()
        if reason is None:
            available.append(name)
        else:
            missing[name] = reason
    return available, missing
