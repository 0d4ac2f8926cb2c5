"""``plot_tree`` with matplotlib."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna_fractal._view import TreeView
from optuna_fractal.visualization._tree import _get_tree_info
from optuna_fractal.visualization._tree import group_label
from optuna_fractal.visualization._tree import NO_VALUE_LABEL
from optuna_fractal.visualization._utils import import_pyplot
from optuna_fractal.visualization._utils import KIND_COLOURS


if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from optuna.study import Study


# Matplotlib marker of each node kind. Expanded nodes are hollow.
KIND_MARKERS = {
    "evaluated": "o",
    "inherited": "^",
    "gp": "D",
    "failed": "X",
    "running": "h",
    "open": "s",
}


def plot_tree(study: Study | TreeView) -> Axes:
    """Plot every node of a study's partition tree at its depth and value, with matplotlib.

    It draws the picture of :func:`optuna_fractal.visualization.plot_tree`, with lines from
    parent to child. The marker gives where the value comes from: ``o`` evaluated, ``^``
    inherited, ``D`` GP-scored, ``X`` failed, ``h`` running and ``s`` open. Leaves are filled
    and expanded nodes hollow. Nodes without a finite value sit on a dotted row past the worst
    value, and a dashed red line marks the best evaluation.

    Example:
        ```python
        import optuna
        from optuna_fractal import SOOSampler
        from optuna_fractal.visualization.matplotlib import plot_tree

        study = optuna.create_study(sampler=SOOSampler())
        study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=30)
        plot_tree(study).figure.savefig("tree.png")
        ```

    Args:
        study: A study run by :class:`~optuna_fractal.SOOSampler` or
            :class:`~optuna_fractal.BaMSOOSampler`, or a :class:`~optuna_fractal.TreeView`
            from :func:`~optuna_fractal.get_tree`.

    Returns:
        The :class:`matplotlib.axes.Axes` of a new figure.

    Raises:
        ValueError: If the study has no tree yet.
        TypeError: If ``study`` is neither a study nor a tree.
        ImportError: If matplotlib is not installed.
    """
    plt = import_pyplot("plot_tree")
    from matplotlib.collections import LineCollection

    info = _get_tree_info(study, "plot_tree")
    _, ax = plt.subplots(figsize=(8.0, 5.5), layout="constrained")

    segments = [[(parent.x, parent.y), (child.x, child.y)] for parent, child in info.edges]
    edges = LineCollection(segments, colors="#bbbbbb", linewidths=1.0, zorder=1)
    edges.set_gid("edges")
    ax.add_collection(edges)

    for kind, expanded, points in info.groups():
        colour = KIND_COLOURS[kind]
        collection = ax.scatter(
            [point.x for point in points],
            [point.y for point in points],
            marker=KIND_MARKERS[kind],
            s=60 if kind in ("gp", "failed", "running") else 45,
            facecolors="none" if expanded else colour,
            edgecolors=colour,
            linewidths=1.3,
            label=group_label(kind, expanded),
            zorder=3,
        )
        collection.set_gid(f"nodes-{kind}-{'expanded' if expanded else 'leaf'}")

    if info.best_value is not None:
        ax.axhline(
            info.best_value,
            color="red",
            linestyle="--",
            linewidth=1.0,
            label=f"best {info.best_value:.6g}",
            zorder=2,
        )
    if info.no_value_y is not None:
        ax.axhline(info.no_value_y, color=KIND_COLOURS["open"], linestyle=":", linewidth=1.0)
        ax.annotate(
            NO_VALUE_LABEL,
            xy=(1.0, info.no_value_y),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize="small",
            color=KIND_COLOURS["open"],
        )

    ax.set_title(info.title)
    ax.set_xlabel("Depth")
    ax.set_ylabel(info.value_title)
    ax.set_xticks(range(info.tree.max_depth + 1))
    ax.grid(axis="y", color="#eeeeee")
    ax.autoscale_view()
    ax.legend(
        loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=3, fontsize="small", frameon=False
    )
    return ax
