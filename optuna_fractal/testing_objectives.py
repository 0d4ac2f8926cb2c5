"""Cheap objectives for demos and for tests of the worker command.

``optuna-fractal run --objective optuna_fractal.testing_objectives:branin`` runs the Branin
function. The environment variable ``OPTUNA_FRACTAL_OBJECTIVE_SLEEP`` (seconds, default 0)
makes each evaluation sleep. The sleep simulates an expensive objective when measuring how
workers scale or when killing workers in the middle of a trial.
"""

from __future__ import annotations

import math
import os
import time

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution


SLEEP_VARIABLE = "OPTUNA_FRACTAL_OBJECTIVE_SLEEP"


def _sleep() -> None:
    seconds = float(os.environ.get(SLEEP_VARIABLE, "0") or 0)
    if seconds > 0:
        time.sleep(seconds)


class Branin:
    """The Branin function on ``[-5, 10] x [0, 15]``, minimised; its minimum is 0.397887.

    Attributes:
        search_space: The two parameters ``x1`` and ``x2``.
        direction: ``"minimize"``.
        f_opt: The minimum value, for computing regrets.

    Example:

        .. code-block:: python

            import optuna
            from optuna_fractal import SOOSampler
            from optuna_fractal.testing_objectives import branin

            study = optuna.create_study(sampler=SOOSampler(search_space=branin.search_space))
            study.optimize(branin, n_trials=30)
            print(study.best_value - branin.f_opt)
    """

    f_opt = 0.397887357729739
    direction = "minimize"

    def __init__(self) -> None:
        self.search_space: dict[str, BaseDistribution] = {
            "x1": FloatDistribution(-5.0, 10.0),
            "x2": FloatDistribution(0.0, 15.0),
        }

    @staticmethod
    def value(x1: float, x2: float) -> float:
        b = 5.1 / (4 * math.pi**2)
        c = 5 / math.pi
        t = 1 / (8 * math.pi)
        return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10

    def __call__(self, trial: optuna.Trial) -> float:
        x1 = trial.suggest_float("x1", -5.0, 10.0)
        x2 = trial.suggest_float("x2", 0.0, 15.0)
        _sleep()
        return self.value(x1, x2)


branin = Branin()


def failing(trial: optuna.Trial) -> float:
    """Raise ``RuntimeError`` after suggesting ``x``: an objective whose every trial fails."""
    trial.suggest_float("x", 0.0, 1.0)
    raise RuntimeError("failing objective: every trial raises")
