"""Tests of beta_n, the multiplier of BaMSOO's confidence bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optuna_fractal._bamsoo_math import beta_n


@pytest.mark.parametrize(
    ("n", "eta", "expected"),
    [
        # sqrt(2 * log(pi**2 * n**2 / (6 * eta))), worked out by hand.
        (1, 1.0, math.sqrt(2.0 * math.log(math.pi**2 / 6.0))),
        (1, 0.5, math.sqrt(2.0 * math.log(math.pi**2 / 3.0))),
        (10, 0.05, math.sqrt(2.0 * math.log(100.0 * math.pi**2 / 0.3))),
        (1000, 0.1, math.sqrt(2.0 * math.log(1e6 * math.pi**2 / 0.6))),
    ],
)
def test_beta_n_values(n: int, eta: float, expected: float) -> None:
    assert beta_n(n, eta) == pytest.approx(expected, rel=1e-12)


def test_beta_n_known_number() -> None:
    # pi**2 / 6 = 1.64493, its log is 0.49770, and sqrt(2 * 0.49770) = 0.99770.
    assert beta_n(1, 1.0) == pytest.approx(0.99770, abs=1e-5)


def test_beta_n_monotone() -> None:
    assert beta_n(2, 0.1) > beta_n(1, 0.1)
    assert beta_n(100, 0.1) > beta_n(10, 0.1)
    assert beta_n(10, 0.01) > beta_n(10, 0.1)


def test_beta_n_accepts_numpy_ints() -> None:
    assert beta_n(np.int64(5), np.float64(0.5)) == beta_n(5, 0.5)


@pytest.mark.parametrize("eta", [0.0, -0.1, 1.5, math.nan, math.inf])
def test_beta_n_rejects_eta(eta: float) -> None:
    with pytest.raises(ValueError, match=r"eta must be in \(0, 1\], got"):
        beta_n(10, eta)


@pytest.mark.parametrize("n", [0, -3])
def test_beta_n_rejects_small_n(n: int) -> None:
    with pytest.raises(ValueError, match=f"n must be at least 1, got {n}"):
        beta_n(n, 0.5)


@pytest.mark.parametrize(("n", "eta"), [(1.5, 0.5), (True, 0.5), (3, "0.5"), (3, None)])
def test_beta_n_rejects_types(n: object, eta: object) -> None:
    with pytest.raises(TypeError):
        beta_n(n, eta)  # type: ignore[arg-type]
