"""LoRA fine-tuning of LitGPT models as an Optuna objective, scored with lm-eval.

Importing this package is cheap: torch, LitGPT and lm-eval are imported by the first
trial, not here.

Example:
    >>> import optuna
    >>> from optuna_fractal_objectives import build_objective, config_path
    >>> objective = build_objective(config_path("cpu-tiny"))
    >>> study = optuna.create_study(direction=objective.direction)
    >>> study.optimize(objective, n_trials=20)  # doctest: +SKIP
"""

from __future__ import annotations

from .config import bundled_config_names
from .config import config_path
from .config import load_config
from .config import LoRAConfig
from .objective import build_objective
from .objective import LoRAObjective


__all__ = [
    "LoRAConfig",
    "LoRAObjective",
    "build_objective",
    "bundled_config_names",
    "config_path",
    "load_config",
]
