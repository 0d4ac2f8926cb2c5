"""Partition-based ("fractal") samplers for Optuna.

``SOOSampler`` runs Simultaneous Optimistic Optimization and ``BaMSOOSampler`` its Bayesian
variant, with every decision stored in the study so that many workers can share one storage.
"""

from __future__ import annotations

from optuna_fractal._bamsoo import BaMSOOSampler
from optuna_fractal._bo import bo_baseline
from optuna_fractal._coordination import ENVIRONMENT_FAILURE_ATTR
from optuna_fractal._lhs import LHSSampler
from optuna_fractal._sampler import SOOSampler
from optuna_fractal._surrogate import BoTorchGP
from optuna_fractal._surrogate import Surrogate
from optuna_fractal._surrogate import SurrogateFitError
from optuna_fractal._view import get_tree
from optuna_fractal._view import NodeView
from optuna_fractal._view import TreeView


__version__ = "0.1.0"

__all__ = [
    "ENVIRONMENT_FAILURE_ATTR",
    "BaMSOOSampler",
    "BoTorchGP",
    "LHSSampler",
    "NodeView",
    "SOOSampler",
    "Surrogate",
    "SurrogateFitError",
    "TreeView",
    "bo_baseline",
    "get_tree",
]
