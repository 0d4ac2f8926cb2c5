"""Plots of a study's partition tree, and their place in optuna-dashboard.

:func:`plot_partition` draws the cells of the tree and :func:`plot_tree` its nodes by depth
and value. Both return plotly figures, like :mod:`optuna.visualization`. Their matplotlib
twins are in :mod:`optuna_fractal.visualization.matplotlib`. :func:`save_to_dashboard` and
:class:`DashboardCallback` store the figures and a tree summary in the study, where
optuna-dashboard shows them. plotly, matplotlib and optuna-dashboard are imported only when
a function needs them.
"""

from __future__ import annotations

from optuna_fractal.visualization import matplotlib
from optuna_fractal.visualization._dashboard import DashboardCallback
from optuna_fractal.visualization._dashboard import save_to_dashboard
from optuna_fractal.visualization._dashboard import summary_markdown
from optuna_fractal.visualization._partition import plot_partition
from optuna_fractal.visualization._tree import plot_tree


__all__ = [
    "DashboardCallback",
    "matplotlib",
    "plot_partition",
    "plot_tree",
    "save_to_dashboard",
    "summary_markdown",
]
