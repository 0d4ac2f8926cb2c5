"""Tests of the BoTorch Gaussian-process surrogate: fit, predict, warm start and bad data."""

from __future__ import annotations

from collections.abc import Callable
import json
import logging
import math
from pathlib import Path
import subprocess
import sys
from typing import Any

import numpy as np
import optuna
import pytest

from optuna_fractal._surrogate import BoTorchGP
from optuna_fractal._surrogate import Surrogate
from optuna_fractal._surrogate import SurrogateFitError


REPO_ROOT = Path(__file__).resolve().parents[1]


def smooth_objective(x: np.ndarray) -> np.ndarray:
    """Return a smooth 2-D test function of unit-cube points, to maximise."""
    return -((x[:, 0] - 0.3) ** 2) - 2.0 * (x[:, 1] - 0.7) ** 2 + 0.1 * np.sin(6.0 * x[:, 0])


def training_data(n: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).random((n, 2))
    return x, smooth_objective(x)


@pytest.fixture
def fit_spy(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Wrap botorch.fit.fit_gpytorch_mll and record the state at the start of each fit."""
    import botorch.fit
    import torch

    real_fit = botorch.fit.fit_gpytorch_mll
    calls: list[dict[str, Any]] = []

    def spy(mll: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(
            {
                "lengthscale": mll.model.covar_module.lengthscale.detach().clone(),
                "noise": mll.model.likelihood.noise.detach().clone(),
                "threads": torch.get_num_threads(),
            }
        )
        return real_fit(mll, *args, **kwargs)

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", spy)
    return calls


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys\n"
        "import optuna_fractal._surrogate\n"
        "import optuna_fractal._bamsoo_math\n"
        "heavy = sorted(m for m in ('torch', 'botorch', 'gpytorch') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == ""


def test_fit_predict_interpolates() -> None:
    x, y = training_data()
    gp = BoTorchGP(seed=0)
    gp.fit(x, y)
    mean, std = gp.predict(x)

    assert mean.shape == (15,)
    assert std.shape == (15,)
    assert mean.dtype == np.float64
    assert std.dtype == np.float64
    assert np.max(np.abs(mean - y)) < 0.05 * np.ptp(y)
    assert np.all(std >= 0.0)


def test_std_grows_away_from_data() -> None:
    x = np.array([[0.1, 0.1], [0.2, 0.15], [0.15, 0.2], [0.25, 0.25], [0.1, 0.3]])
    gp = BoTorchGP(seed=0)
    gp.fit(x, smooth_objective(x))
    _, std = gp.predict(np.array([[0.15, 0.2], [0.95, 0.95]]))

    assert std[1] > 2.0 * std[0]


def test_predict_empty_batch() -> None:
    x, y = training_data()
    gp = BoTorchGP(seed=0)
    gp.fit(x, y)
    mean, std = gp.predict(np.empty((0, 2)))

    assert mean.shape == (0,)
    assert std.shape == (0,)


def test_same_seed_same_predictions() -> None:
    x, y = training_data()
    queries = np.random.default_rng(1).random((20, 2))
    first = BoTorchGP(seed=3)
    second = BoTorchGP(seed=3)
    first.fit(x, y)
    second.fit(x, y)
    first.fit(x[:10], y[:10])
    second.fit(x[:10], y[:10])

    mean_1, std_1 = first.predict(queries)
    mean_2, std_2 = second.predict(queries)
    assert np.array_equal(mean_1, mean_2)
    assert np.array_equal(std_1, std_2)


def test_fit_leaves_torch_rng_alone() -> None:
    import torch

    x, y = training_data()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    BoTorchGP(seed=0).fit(x, y)

    assert torch.equal(torch.rand(3), expected)


def test_warm_start_from_previous_fit(fit_spy: list[dict[str, Any]]) -> None:
    x, y = training_data(20)
    gp = BoTorchGP(seed=0)
    gp.fit(x[:12], y[:12])
    fitted_lengthscale = gp._model.covar_module.lengthscale.detach().clone()
    fitted_noise = gp._model.likelihood.noise.detach().clone()
    gp.fit(x, y)

    assert len(fit_spy) == 2
    assert not np.allclose(fit_spy[0]["lengthscale"].numpy(), fitted_lengthscale.numpy())
    assert np.array_equal(fit_spy[1]["lengthscale"].numpy(), fitted_lengthscale.numpy())
    assert np.array_equal(fit_spy[1]["noise"].numpy(), fitted_noise.numpy())


def test_no_warm_start_across_dimensions(fit_spy: list[dict[str, Any]]) -> None:
    x, y = training_data()
    gp = BoTorchGP(seed=0)
    gp.fit(x, y)
    x3 = np.random.default_rng(2).random((15, 3))
    y3 = smooth_objective(x3) + x3[:, 2]
    gp.fit(x3, y3)
    mean, _ = gp.predict(x3)
    BoTorchGP(seed=0).fit(x3, y3)

    # After a change of dimension the fit starts where a fresh model starts.
    assert fit_spy[1]["lengthscale"].shape[-1] == 3
    assert np.array_equal(fit_spy[1]["lengthscale"].numpy(), fit_spy[2]["lengthscale"].numpy())
    assert mean.shape == (15,)


def test_num_threads_applied_and_restored(fit_spy: list[dict[str, Any]]) -> None:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, y = training_data()
        BoTorchGP(seed=0, num_threads=1).fit(x, y)
        assert fit_spy[0]["threads"] == 1
        assert torch.get_num_threads() == 2

        BoTorchGP(seed=0).fit(x, y)
        assert fit_spy[1]["threads"] == 2
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.array([[0.5, 0.5]]), np.array([1.0]), "at least 2 points, got 1"),
        (np.zeros((0, 2)), np.zeros(0), "at least 2 points, got 0"),
        (np.array([[0.1], [0.5], [0.9]]), np.array([2.0, 2.0, 2.0]), "All 3 values of y equal"),
        (np.array([[0.1], [0.5], [0.9]]), np.array([1.0, np.nan, 2.0]), "1 NaN or infinite"),
        (np.array([[0.1], [0.5], [0.9]]), np.array([1.0, np.inf, 2.0]), "1 NaN or infinite"),
        (np.array([[0.1], [np.nan], [0.9]]), np.array([1.0, 2.0, 3.0]), "x contains NaN"),
    ],
)
def test_bad_data_raises_fit_error(x: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(SurrogateFitError, match=match):
        BoTorchGP().fit(x, y)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.array([0.1, 0.5, 0.9]), np.array([1.0, 2.0, 3.0]), "2-D array"),
        (np.array([[0.1], [0.5]]), np.array([1.0, 2.0, 3.0]), r"y must have shape \(2,\)"),
        (np.array([[0.1], [1.5]]), np.array([1.0, 2.0]), r"unit cube \[0, 1\]\^d"),
        (np.array([[-0.1], [0.5]]), np.array([1.0, 2.0]), "unit cube"),
    ],
)
def test_bad_shapes_raise_value_error(x: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BoTorchGP().fit(x, y)


def test_predict_before_fit_raises() -> None:
    with pytest.raises(SurrogateFitError, match="call fit"):
        BoTorchGP().predict(np.array([[0.5, 0.5]]))


def test_predict_wrong_dimension_raises() -> None:
    x, y = training_data()
    gp = BoTorchGP(seed=0)
    gp.fit(x, y)

    with pytest.raises(ValueError, match="x has 3 columns but the model was fitted in 2"):
        gp.predict(np.full((1, 3), 0.5))


def test_fit_exception_becomes_fit_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from botorch.exceptions import ModelFittingError
    import botorch.fit

    x, y = training_data()
    gp = BoTorchGP(seed=0)
    gp.fit(x, y)

    def failing_fit(mll: Any, *args: Any, **kwargs: Any) -> Any:
        raise ModelFittingError("All attempts to fit the model have failed.")

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", failing_fit)
    with pytest.raises(
        SurrogateFitError, match="Fitting the Gaussian process to 15 points"
    ) as info:
        gp.fit(x, y)

    assert isinstance(info.value.__cause__, ModelFittingError)
    # After a failed fit, predict() must not fall back to the earlier model.
    with pytest.raises(SurrogateFitError, match="no fitted model"):
        gp.predict(x)


def test_nan_predictions_raise_fit_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import botorch.fit

    real_fit = botorch.fit.fit_gpytorch_mll

    def fit_then_corrupt(mll: Any, *args: Any, **kwargs: Any) -> Any:
        result = real_fit(mll, *args, **kwargs)
        mll.model.mean_module.raw_constant.data.fill_(math.nan)
        return result

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", fit_then_corrupt)
    x, y = training_data()
    gp = BoTorchGP(seed=0)

    with pytest.raises(SurrogateFitError, match="non-finite values at its own training points"):
        gp.fit(x, y)
    with pytest.raises(SurrogateFitError, match="no fitted model"):
        gp.predict(x)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"seed": "1"}, TypeError, "seed must be an int or None"),
        ({"num_threads": 0}, ValueError, "num_threads must be at least 1, got 0"),
        ({"num_threads": 1.0}, TypeError, "num_threads must be an int or None"),
    ],
)
def test_invalid_arguments_rejected(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        BoTorchGP(**kwargs)


def test_protocol_accepts_other_surrogates() -> None:
    class MeanOnly:
        def fit(self, x: np.ndarray, y: np.ndarray) -> None:
            self.mean = float(np.mean(y))

        def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return np.full(len(x), self.mean), np.ones(len(x))

    surrogates: list[Callable[[], object]] = [BoTorchGP, MeanOnly]
    for make in surrogates:
        assert isinstance(make(), Surrogate)
    assert not isinstance(object(), Surrogate)


def test_export_state_before_fit_is_none() -> None:
    assert BoTorchGP().export_state() is None


def test_state_round_trip_through_json() -> None:
    x, y = training_data(20)
    queries = np.random.default_rng(4).random((10, 2))
    original = BoTorchGP(seed=5)
    original.fit(x[:12], y[:12])
    state = json.loads(json.dumps(original.export_state()))
    restored = BoTorchGP(seed=5)
    restored.load_state(state)
    original.fit(x, y)
    restored.fit(x, y)

    assert state["dim"] == 2
    assert "covar_module.raw_lengthscale" in state["hyperparameters"]
    mean_1, std_1 = original.predict(queries)
    mean_2, std_2 = restored.predict(queries)
    assert np.array_equal(mean_1, mean_2)
    assert np.array_equal(std_1, std_2)


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"dim": 0, "hyperparameters": {"covar_module.raw_lengthscale": [[0.1, 0.2]]}},
        {"dim": 2, "hyperparameters": {}},
        {"dim": 2, "hyperparameters": {"covar_module.raw_lengthscale": [[math.nan, 0.2]]}},
        {"dim": 2, "hyperparameters": {"covar_module.raw_lengthscale": [[0.1], [0.2, 0.3]]}},
        {"dim": 2, "hyperparameters": {"unknown.parameter": [0.5]}},
    ],
)
def test_unusable_state_starts_cold(
    state: dict[str, Any],
    fit_spy: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    x, y = training_data()
    BoTorchGP(seed=0).fit(x, y)
    gp = BoTorchGP(seed=0)
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger="optuna_fractal._surrogate"):
            gp.load_state(state)
            gp.fit(x, y)
    finally:
        optuna.logging.disable_propagation()

    assert np.array_equal(fit_spy[1]["lengthscale"].numpy(), fit_spy[0]["lengthscale"].numpy())
    assert "BoTorch's default" in caplog.text
