"""Matplotlib versions of the partition-tree plots; each returns a :class:`matplotlib.axes.Axes`.

matplotlib is imported only when a function is called.
"""

from __future__ import annotations

from optuna_fractal.visualization.matplotlib._partition import plot_partition
from optuna_fractal.visualization.matplotlib._tree import plot_tree


__all__ = ["plot_partition", "plot_tree"]
