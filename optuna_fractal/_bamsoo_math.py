"""Width of the Gaussian-process confidence bounds that BaMSOO compares against the best value.

BaMSOO (Wang, Shakibi, Jin and de Freitas, "Bayesian Multi-Scale Optimistic Optimization",
AISTATS 2014) evaluates a new node only where the upper confidence bound
``mu(x) + B_N * sigma(x)`` reaches the best value so far, and otherwise stores the lower bound
``mu(x) - B_N * sigma(x)``. This module computes ``B_N``. It imports nothing beyond the standard
library, so the policy code can use it without torch.
"""

from __future__ import annotations

import math
import numbers


def beta_n(n: int, eta: float) -> float:
    """Compute the confidence-bound multiplier ``sqrt(2 * log(pi**2 * n**2 / (6 * eta)))``.

    The value multiplies the posterior standard deviation directly:
    ``ucb = mean + beta_n(n, eta) * std``. It grows like ``sqrt(4 * log(n))``, so the bounds
    widen slowly as the count grows, and a smaller ``eta`` widens them for every ``n``.
    For ``n >= 1`` and ``0 < eta <= 1`` the argument of the logarithm is at least
    ``pi**2 / 6 > 1``, so the result is a positive finite float.

    Args:
        n: The count ``N`` of the BaMSOO paper, at least 1.
        eta: Confidence parameter in ``(0, 1]``. The ``pi**2 * n**2 / 6`` term spreads it
            over all ``n`` by a union bound, because the sum of ``1 / n**2`` is ``pi**2 / 6``.

    Returns:
        The multiplier ``B_N``.

    Raises:
        TypeError: If ``n`` is not an integer or ``eta`` is not a real number.
        ValueError: If ``n < 1`` or ``eta`` is outside ``(0, 1]``.

    Example:
        >>> round(beta_n(1, 0.5), 4)
        1.5433
        >>> beta_n(100, 0.05) > beta_n(10, 0.05)
        True
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {n!r} of type {type(n).__name__}.")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}. The count starts at 1.")
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real):
        raise TypeError(f"eta must be a float in (0, 1], got {eta!r}.")
    if not 0.0 < eta <= 1.0:
        raise ValueError(
            f"eta must be in (0, 1], got {eta!r}. Pass a confidence parameter such as 0.05; "
            "smaller values give wider bounds."
        )
    return math.sqrt(2.0 * math.log(math.pi**2 * int(n) ** 2 / (6.0 * float(eta))))
