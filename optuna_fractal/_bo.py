"""Bayesian-optimisation baseline: BoTorch's sampler started from a Latin hypercube design."""

from __future__ import annotations

import numbers
from typing import Any
from typing import TYPE_CHECKING

from optuna_fractal._lhs import LHSSampler


if TYPE_CHECKING:
    from optuna_integration import BoTorchSampler


def bo_baseline(
    *, n_startup_trials: int = 10, seed: int | None = None, **botorch_kwargs: Any
) -> BoTorchSampler:
    """Build ``optuna_integration.BoTorchSampler`` whose start-up trials form a Latin hypercube.

    The first ``n_startup_trials`` trials are the points of an :class:`LHSSampler` design of
    ``n_startup_trials`` points, one per stratum of every parameter. BoTorch counts completed
    and running trials, so after a failed or pruned start-up trial the start-up phase runs into
    trial numbers past the design, and those trials take points of the next design block.
    Later trials come from BoTorch's Gaussian process and acquisition function (log expected
    improvement for one objective, when ``candidates_func`` is not given). Parameters that
    BoTorch cannot model jointly, such as conditional ones, also go to the LHS sampler.

    optuna-integration 5.0.0 marks ``BoTorchSampler`` and its default ``candidates_func`` as
    experimental, so Optuna emits ``optuna.exceptions.ExperimentalWarning`` when the sampler is
    built and again on every model-based trial. This function leaves those warnings alone;
    filter them with
    ``warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)``.

    torch, botorch and optuna-integration are imported when this function runs, not when
    ``optuna_fractal`` is imported. They come with the ``bo`` extra.

    Args:
        n_startup_trials: Number of start-up trials, which is also the size of the Latin
            hypercube, at least 1. Defaults to 10.
        seed: Seed of both the Latin hypercube and BoTorch. Defaults to ``None``: the Latin
            hypercube seed then comes from the study name, so workers still share one design,
            and BoTorch is unseeded.
        **botorch_kwargs: Further keyword arguments of ``BoTorchSampler``, for example
            ``candidates_func`` or ``consider_running_trials``.

    Returns:
        The configured ``optuna_integration.BoTorchSampler``.

    Raises:
        TypeError: If ``botorch_kwargs`` contains ``independent_sampler``, or an argument has
            the wrong type.
        ValueError: If ``n_startup_trials < 1``.
        ImportError: If optuna-integration, torch or botorch is not installed.

    Example:
        ```python
        import optuna
        from optuna_fractal import bo_baseline


        def objective(trial: optuna.Trial) -> float:
            x = trial.suggest_float("x", -5.0, 5.0)
            y = trial.suggest_float("y", -5.0, 5.0)
            return (x - 1.0) ** 2 + (y + 2.0) ** 2


        study = optuna.create_study(sampler=bo_baseline(n_startup_trials=10, seed=0))
        study.optimize(objective, n_trials=20)
        ```

    """
    if "independent_sampler" in botorch_kwargs:
        raise TypeError(
            "bo_baseline() sets independent_sampler to an LHSSampler itself. To use another "
            "independent sampler, build optuna_integration.BoTorchSampler directly."
        )
    if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, numbers.Integral):
        raise TypeError(f"n_startup_trials must be an int, got {n_startup_trials!r}.")
    if n_startup_trials < 1:
        raise ValueError(
            f"n_startup_trials must be at least 1, got {n_startup_trials}. BoTorch needs "
            "completed trials before it can fit its model."
        )

    independent_sampler = LHSSampler(n_points=int(n_startup_trials), seed=seed)

    try:
        from optuna_integration import BoTorchSampler
    except ImportError as error:
        raise ImportError(
            "bo_baseline() needs optuna-integration, torch and botorch. Install them with "
            "`pip install torch==2.13.0` and then `pip install optuna-fractal[bo]`."
        ) from error

    return BoTorchSampler(
        n_startup_trials=int(n_startup_trials),
        seed=seed,
        independent_sampler=independent_sampler,
        **botorch_kwargs,
    )
