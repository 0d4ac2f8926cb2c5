"""``plot_partition`` with matplotlib."""

from __future__ import annotations

import math
from typing import Any
from typing import TYPE_CHECKING

from optuna_fractal._view import TreeView
from optuna_fractal.visualization._partition import _Cell
from optuna_fractal.visualization._partition import _get_partition_info
from optuna_fractal.visualization._partition import _PartitionInfo
from optuna_fractal.visualization._utils import AxisInfo
from optuna_fractal.visualization._utils import colorbar_title
from optuna_fractal.visualization._utils import import_pyplot
from optuna_fractal.visualization._utils import KIND_COLOURS
from optuna_fractal.visualization._utils import KIND_LABELS


if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes
    from optuna.study import Study


# Matplotlib marker of each kind of centre: (marker, name in the legend).
CENTRE_MARKERS = {
    "evaluated": ("o", "evaluated centre"),
    "gp": ("D", "GP-scored centre"),
    "failed": ("x", "failed centre"),
    "running": ("h", "running centre"),
    "open": ("o", "open centre"),
}

# Hatch of a GP-scored cell and of a failed cell.
GP_HATCH = "//"
FAILED_HATCH = "xx"


def plot_partition(study: Study | TreeView, params: Sequence[str] | str | None = None) -> Axes:
    """Plot the cells of a study's partition tree, projected on two parameters, with matplotlib.

    It draws the picture of :func:`optuna_fractal.visualization.plot_partition`. Each leaf is
    a rectangle in unit-cube coordinates, with axes labelled in parameter values, coloured by
    its value (brightest for the best value). GP-scored cells are hatched ``//``, failed cells
    are grey and hatched ``xx``, running cells have a purple outline and open cells a dotted
    grey one. Points mark the evaluated centres and a red star the best evaluation. Where
    cells overlap in the projection, the better cell is drawn on top. With one parameter,
    cells are horizontal segments at their value, and cells without a value are shaded bands.

    Example:
        ```python
        import optuna
        from optuna_fractal import SOOSampler
        from optuna_fractal.visualization.matplotlib import plot_partition


        def objective(trial):
            x = trial.suggest_float("x", -5, 5)
            lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
            return (x - 1) ** 2 + (lr - 1e-3) ** 2


        study = optuna.create_study(sampler=SOOSampler())
        study.optimize(objective, n_trials=40)
        ax = plot_partition(study)
        ax.figure.savefig("partition.png")
        ```

    Args:
        study: A study run by :class:`~optuna_fractal.SOOSampler` or
            :class:`~optuna_fractal.BaMSOOSampler`, or a :class:`~optuna_fractal.TreeView`
            from :func:`~optuna_fractal.get_tree`.
        params: The parameters on the x and y axes, or a single parameter for a 1-D plot.
            Defaults to ``None``: the first two parameters (by name) that have more than one
            value, or the only one.

    Returns:
        The :class:`matplotlib.axes.Axes` of a new figure.

    Raises:
        ValueError: If the study has no tree yet, or ``params`` names an unknown parameter
            (the message lists the valid ones), a parameter twice, or more than two.
        TypeError: If ``study`` is neither a study nor a tree.
        ImportError: If matplotlib is not installed.
    """
    plt = import_pyplot("plot_partition")
    info = _get_partition_info(study, params, "plot_partition")
    figure, ax = plt.subplots(figsize=(7.5, 7.0), layout="constrained")
    handles: list[Any] = []
    if info.is_1d:
        handles += _draw_1d_cells(ax, info)
    else:
        handles += _draw_2d_cells(ax, info)
    handles += _draw_centres(ax, info)
    _set_axes(ax, info)
    if info.scale is not None:
        from matplotlib.cm import ScalarMappable

        figure.colorbar(
            ScalarMappable(norm=_norm(info), cmap=_cmap(info)),
            ax=ax,
            label=colorbar_title(info.scale),
        )
    if handles:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.0, -0.1),
            ncol=3,
            fontsize="small",
            frameon=False,
        )
    return ax


def _cmap(info: _PartitionInfo) -> Any:
    import matplotlib

    assert info.scale is not None
    return matplotlib.colormaps["viridis" if info.scale.maximize else "viridis_r"]


def _norm(info: _PartitionInfo) -> Any:
    from matplotlib.colors import Normalize

    assert info.scale is not None
    return Normalize(vmin=info.scale.low, vmax=info.scale.high)


def _cell_style(cell: _Cell) -> dict[str, Any]:
    """Return the :class:`~matplotlib.patches.Rectangle` settings of a cell of the given kind."""
    import matplotlib

    viridis = matplotlib.colormaps["viridis"]
    colour = KIND_COLOURS[cell.kind]
    if cell.kind in ("evaluated", "inherited"):
        assert cell.goodness is not None
        return {"facecolor": viridis(cell.goodness), "edgecolor": "white", "linewidth": 0.4}
    if cell.kind == "gp":
        face = viridis(cell.goodness) if cell.goodness is not None else "none"
        return {"facecolor": face, "edgecolor": colour, "linewidth": 1.0, "hatch": GP_HATCH}
    if cell.kind == "failed":
        return {
            "facecolor": "lightgrey",
            "edgecolor": colour,
            "linewidth": 0.8,
            "hatch": FAILED_HATCH,
        }
    if cell.kind == "running":
        return {"facecolor": "none", "edgecolor": colour, "linewidth": 2.0}
    return {"facecolor": "none", "edgecolor": colour, "linewidth": 1.5, "linestyle": ":"}


def _draw_2d_cells(ax: Axes, info: _PartitionInfo) -> list[Any]:
    from matplotlib.patches import Rectangle

    handles: dict[str, Any] = {}
    for cell in info.cells:
        assert cell.y is not None
        (x0, x1), (y0, y1) = cell.x, cell.y
        style = _cell_style(cell)
        patch = Rectangle((x0, y0), x1 - x0, y1 - y0, **style)
        patch.set_gid(cell.node.id)
        ax.add_patch(patch)
        if cell.kind not in ("evaluated", "inherited") and cell.kind not in handles:
            legend_style = dict(style)
            if cell.kind == "gp":
                legend_style["facecolor"] = "none"
            handles[cell.kind] = Rectangle(
                (0, 0), 1, 1, label=f"{KIND_LABELS[cell.kind]} cell", **legend_style
            )
    return list(handles.values())


def _draw_1d_cells(ax: Axes, info: _PartitionInfo) -> list[Any]:
    handles = []
    for kind in ("failed", "running", "open"):
        bands = [cell for cell in info.cells if cell.kind == kind]
        for index, cell in enumerate(bands):
            patch = ax.axvspan(
                cell.x[0],
                cell.x[1],
                color=KIND_COLOURS[kind],
                alpha=0.15,
                label=f"{KIND_LABELS[kind]} cell" if index == 0 else None,
            )
            patch.set_gid(cell.node.id)
            if index == 0:
                handles.append(patch)
    groups = (
        ("evaluated or inherited cell", ("evaluated", "inherited"), "solid", "#444444"),
        ("GP-scored cell", ("gp",), "dashed", KIND_COLOURS["gp"]),
    )
    for name, kinds, linestyle, colour in groups:
        segments = [
            cell
            for cell in info.cells
            if cell.kind in kinds
            and cell.node.value is not None
            and math.isfinite(cell.node.value)
        ]
        if not segments:
            continue
        lines = ax.hlines(
            [cell.node.value for cell in segments],
            [cell.x[0] for cell in segments],
            [cell.x[1] for cell in segments],
            colors=colour,
            linestyles=linestyle,
            linewidths=3,
            label=name,
        )
        lines.set_gid(f"segments-{kinds[-1]}")
        handles.append(lines)
    return handles


def _draw_centres(ax: Axes, info: _PartitionInfo) -> list[Any]:
    handles = []
    for kind, (marker, name) in CENTRE_MARKERS.items():
        centres = [centre for centre in info.centres if centre.kind == kind]
        if not centres:
            continue
        xs = [centre.x for centre in centres]
        ys = [centre.y for centre in centres]
        if kind in ("evaluated", "gp") and info.scale is not None:
            collection = ax.scatter(
                xs,
                ys,
                c=[centre.node.value for centre in centres],
                cmap=_cmap(info),
                norm=_norm(info),
                marker=marker,
                s=30 if kind == "evaluated" else 45,
                edgecolors="black" if kind == "evaluated" else KIND_COLOURS["gp"],
                linewidths=0.6 if kind == "evaluated" else 1.2,
                label=name,
                zorder=3,
            )
        elif kind == "open":
            collection = ax.scatter(
                xs,
                ys,
                marker=marker,
                s=30,
                facecolors="none",
                edgecolors=KIND_COLOURS[kind],
                label=name,
                zorder=3,
            )
        else:
            collection = ax.scatter(
                xs, ys, marker=marker, s=40, color=KIND_COLOURS[kind], label=name, zorder=3
            )
        collection.set_gid(f"centres-{kind}")
        handles.append(collection)
    if info.best is not None:
        best = ax.scatter(
            [info.best.x],
            [info.best.y],
            marker="*",
            s=250,
            color="red",
            edgecolors="black",
            linewidths=0.8,
            label="best evaluation",
            zorder=4,
        )
        best.set_gid("best")
        handles.append(best)
    return handles


def _set_ticks(ax: Axes, axis: AxisInfo, which: str) -> None:
    if which == "x":
        ax.set_xticks(list(axis.tickvals), list(axis.ticktext))
        ax.set_xlabel(axis.title)
        ax.set_xlim(0.0, 1.0)
    else:
        ax.set_yticks(list(axis.tickvals), list(axis.ticktext))
        ax.set_ylabel(axis.title)
        ax.set_ylim(0.0, 1.0)


def _set_axes(ax: Axes, info: _PartitionInfo) -> None:
    ax.set_title(info.title)
    _set_ticks(ax, info.x_axis, "x")
    if info.y_axis is not None:
        _set_ticks(ax, info.y_axis, "y")
        ax.set_aspect("equal")
    else:
        ax.set_ylabel(info.value_title)
        ax.set_ylim(*info.value_range())
