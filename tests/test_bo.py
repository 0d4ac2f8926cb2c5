"""Tests of bo_baseline: a Latin hypercube start-up design, then BoTorch."""

from __future__ import annotations

import math
from pathlib import Path
import subprocess
import sys
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
import pytest

from optuna_fractal import bo_baseline
from optuna_fractal import LHSSampler


REPO_ROOT = Path(__file__).resolve().parents[1]

N_STARTUP = 8
N_TRIALS = 12
X_DIST = FloatDistribution(-5.0, 5.0)
Y_DIST = FloatDistribution(-5.0, 5.0)

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", X_DIST.low, X_DIST.high)
    y = trial.suggest_float("y", Y_DIST.low, Y_DIST.high)
    return (x - 1.0) ** 2 + (y + 2.0) ** 2


def stratum(value: float, n_points: int) -> int:
    return math.floor((value - X_DIST.low) / (X_DIST.high - X_DIST.low) * n_points)


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys\n"
        "import optuna_fractal._bo\n"
        "heavy = ('torch', 'botorch', 'gpytorch', 'optuna_integration')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == ""


def test_startup_is_lhs_then_botorch() -> None:
    from optuna_integration.botorch import logei_candidates_func

    calls: list[int] = []

    def counting_candidates(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return logei_candidates_func(*args, **kwargs)

    sampler = bo_baseline(n_startup_trials=N_STARTUP, seed=0, candidates_func=counting_candidates)
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic, n_trials=N_TRIALS)
    trials = study.trials

    # Start-up trials: one point per stratum of each parameter.
    assert sorted(stratum(t.params["x"], N_STARTUP) for t in trials[:N_STARTUP]) == list(
        range(N_STARTUP)
    )
    assert sorted(stratum(t.params["y"], N_STARTUP) for t in trials[:N_STARTUP]) == list(
        range(N_STARTUP)
    )

    # Later trials: BoTorch proposes them, not the next block of the Latin hypercube.
    assert len(calls) == N_TRIALS - N_STARTUP
    continuation = LHSSampler(n_points=N_STARTUP, seed=0)
    for trial in trials[N_STARTUP:]:
        assert continuation.sample_independent(study, trial, "x", X_DIST) != trial.params["x"]
        assert continuation.sample_independent(study, trial, "y", Y_DIST) != trial.params["y"]
        assert X_DIST.low <= trial.params["x"] <= X_DIST.high
        assert Y_DIST.low <= trial.params["y"] <= Y_DIST.high


def test_startup_design_matches_lhs_sampler() -> None:
    study = optuna.create_study(sampler=bo_baseline(n_startup_trials=5, seed=3))
    study.optimize(quadratic, n_trials=5)
    reference = LHSSampler(n_points=5, seed=3)

    for trial in study.trials:
        assert reference.sample_independent(study, trial, "x", X_DIST) == trial.params["x"]
        assert reference.sample_independent(study, trial, "y", Y_DIST) == trial.params["y"]


def test_sampler_configuration() -> None:
    from optuna_integration import BoTorchSampler

    sampler = bo_baseline(n_startup_trials=6, seed=11, consider_running_trials=True)

    assert isinstance(sampler, BoTorchSampler)
    assert sampler._n_startup_trials == 6
    assert sampler._seed == 11
    assert sampler._consider_running_trials is True
    assert isinstance(sampler._independent_sampler, LHSSampler)
    assert sampler._independent_sampler.n_points == 6


def test_rejects_independent_sampler() -> None:
    with pytest.raises(TypeError, match="sets independent_sampler to an LHSSampler itself"):
        bo_baseline(independent_sampler=optuna.samplers.RandomSampler())


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "n_startup_trials must be at least 1, got 0"),
        (-2, ValueError, "n_startup_trials must be at least 1, got -2"),
        (2.0, TypeError, "n_startup_trials must be an int"),
    ],
)
def test_rejects_bad_startup_count(value: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        bo_baseline(n_startup_trials=value)
