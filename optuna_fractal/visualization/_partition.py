"""``plot_partition``: the cells of a partition tree, projected on one or two parameters."""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any
from typing import TYPE_CHECKING

from optuna_fractal._view import NodeView
from optuna_fractal._view import TreeView
from optuna_fractal.visualization._utils import axis_info
from optuna_fractal.visualization._utils import AxisInfo
from optuna_fractal.visualization._utils import best_node
from optuna_fractal.visualization._utils import colorbar_title
from optuna_fractal.visualization._utils import COLOURSCALE
from optuna_fractal.visualization._utils import format_value
from optuna_fractal.visualization._utils import hover_text
from optuna_fractal.visualization._utils import import_plotly
from optuna_fractal.visualization._utils import KIND_COLOURS
from optuna_fractal.visualization._utils import KIND_LABELS
from optuna_fractal.visualization._utils import KINDS
from optuna_fractal.visualization._utils import node_kind
from optuna_fractal.visualization._utils import resolve_params
from optuna_fractal.visualization._utils import resolve_tree
from optuna_fractal.visualization._utils import sampler_label
from optuna_fractal.visualization._utils import value_scale
from optuna_fractal.visualization._utils import value_title
from optuna_fractal.visualization._utils import ValueScale


if TYPE_CHECKING:
    from collections.abc import Sequence

    from optuna.study import Study
    import plotly.graph_objects as go


# Draw order of the cell kinds: failed cells at the bottom, cells with a value above them
# (worst first), cells waiting for a value on top, drawn as outlines only.
_KIND_LAYER = {"failed": 0, "evaluated": 1, "inherited": 1, "gp": 1, "running": 2, "open": 2}


@dataclass(frozen=True)
class _Cell:
    """A leaf's cell, projected on the plotted parameters (unit-cube coordinates)."""

    node: NodeView
    kind: str
    x: tuple[float, float]
    y: tuple[float, float] | None
    goodness: float | None


@dataclass(frozen=True)
class _Centre:
    """A node's centre: unit-cube ``x``, and unit-cube ``y`` (2-D) or the value (1-D)."""

    node: NodeView
    kind: str
    x: float
    y: float


@dataclass(frozen=True)
class _PartitionInfo:
    tree: TreeView
    x_axis: AxisInfo
    y_axis: AxisInfo | None
    cells: tuple[_Cell, ...]
    centres: tuple[_Centre, ...]
    best: _Centre | None
    scale: ValueScale | None
    title: str
    value_title: str

    @property
    def is_1d(self) -> bool:
        return self.y_axis is None

    def value_range(self) -> tuple[float, float]:
        """Return the value-axis range of a 1-D plot: the finite values with a margin."""
        if self.scale is None:
            return (0.0, 1.0)
        low, high = self.scale.value_min, self.scale.value_max
        margin = 0.05 * (high - low) if high > low else max(abs(high) * 0.05, 0.5)
        return (low - margin, high + margin)


def _title(tree: TreeView, n_cells: int) -> str:
    title = f"{sampler_label(tree)} partition: {n_cells} cells, {tree.n_evaluated} evaluations"
    if tree.n_gp_scored:
        title += f", {tree.n_gp_scored} GP-scored"
    return title


def _get_partition_info(
    study: Study | TreeView, params: Sequence[str] | str | None, function_name: str
) -> _PartitionInfo:
    tree = resolve_tree(study, function_name)
    names = resolve_params(tree, params, function_name)
    axes = [axis_info(name, tree.search_space[name]) for name in names]
    x_axis = axes[0]
    y_axis = axes[1] if len(axes) == 2 else None
    scale = value_scale(tree)

    cells = []
    for node in tree.leaves():
        kind = node_kind(node)
        goodness = None
        if node.value is not None:
            # An infinite value gets the colour of its end of the range.
            goodness = scale.goodness(node.value) if scale is not None else 0.0
        cells.append(
            _Cell(
                node=node,
                kind=kind,
                x=node.unit_bounds[x_axis.name],
                y=node.unit_bounds[y_axis.name] if y_axis is not None else None,
                goodness=goodness,
            )
        )
    # Where cells overlap in the projection, the better one is drawn on top, so each point of
    # the plot shows the best value found over the parameters left out.
    cells.sort(key=lambda cell: (_KIND_LAYER[cell.kind], cell.goodness or 0.0))

    centres = []
    for node in tree.nodes:
        kind = node_kind(node)
        if kind == "inherited":
            continue  # Its centre is its parent's, already drawn.
        if (
            kind in ("evaluated", "gp")
            and node.value is not None
            and not math.isfinite(node.value)
        ):
            continue
        if kind not in ("evaluated", "gp") and node.expanded:
            continue
        if y_axis is not None:
            y = y_axis.unit(node.params[y_axis.name])
        elif node.value is not None:
            y = node.value
        else:
            continue  # A 1-D plot marks cells without a value as bands, not points.
        centres.append(_Centre(node, kind, x_axis.unit(node.params[x_axis.name]), y))

    best = best_node(tree)
    best_centre = next((centre for centre in centres if centre.node is best), None)
    return _PartitionInfo(
        tree=tree,
        x_axis=x_axis,
        y_axis=y_axis,
        cells=tuple(cells),
        centres=tuple(centres),
        best=best_centre,
        scale=scale,
        title=_title(tree, len(cells)),
        value_title=value_title(tree),
    )


def plot_partition(
    study: Study | TreeView, params: Sequence[str] | str | None = None
) -> go.Figure:
    """Plot the cells of a study's partition tree, projected on two parameters, with plotly.

    Each leaf of the tree is a rectangle in unit-cube coordinates (log parameters in log space,
    discrete parameters as bins), with axes labelled in parameter values. Cells are coloured
    by their value, brightest for the best value whether the study minimizes or maximizes.
    Cells scored by BaMSOO's Gaussian process instead of an evaluation are hatched, failed
    cells are grey with crosses, and cells waiting for a value (running or open) are outlines.
    Points mark the evaluated centres (coloured by value), diamonds the GP-scored centres, and
    a star the best evaluation. Hovering over a cell or a point shows its node.

    In a study with more than two parameters, cells that differ only in the parameters left
    out overlap. The better cell is drawn on top, so every point shows the best value found
    over the other parameters.

    With one parameter (a 1-D study, or ``params`` naming one parameter), the parameter is on
    the x axis and the value on the y axis. Each cell is a horizontal segment at its value,
    dashed if GP-scored, and cells without a value are shaded bands.

    Example:
        ```python
        import optuna
        from optuna_fractal import SOOSampler
        from optuna_fractal.visualization import plot_partition


        def objective(trial):
            x = trial.suggest_float("x", -5, 5)
            lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
            return (x - 1) ** 2 + (lr - 1e-3) ** 2


        study = optuna.create_study(sampler=SOOSampler())
        study.optimize(objective, n_trials=40)
        plot_partition(study, params=("x", "lr")).write_html("partition.html")
        ```

    Args:
        study: A study run by :class:`~optuna_fractal.SOOSampler` or
            :class:`~optuna_fractal.BaMSOOSampler`, or a :class:`~optuna_fractal.TreeView`
            from :func:`~optuna_fractal.get_tree`.
        params: The parameters on the x and y axes, or a single parameter for a 1-D plot.
            Defaults to ``None``: the first two parameters (by name) that have more than one
            value, or the only one.

    Returns:
        A :class:`plotly.graph_objects.Figure`.

    Raises:
        ValueError: If the study has no tree yet, or ``params`` names an unknown parameter
            (the message lists the valid ones), a parameter twice, or more than two.
        TypeError: If ``study`` is neither a study nor a tree.
        ImportError: If plotly is not installed.
    """
    go = import_plotly("plot_partition")
    info = _get_partition_info(study, params, "plot_partition")
    # Traces are collected and added at once: Figure.add_trace copies every trace already in
    # the figure, which makes adding a trace per cell quadratic.
    traces = _1d_cell_traces(go, info) if info.is_1d else _2d_cell_traces(go, info)
    traces += _centre_traces(go, info)
    figure = go.Figure(data=traces)
    _layout(figure, info)
    return figure


def _colour(goodness: float) -> str:
    from plotly.colors import sample_colorscale

    return sample_colorscale(COLOURSCALE, [goodness])[0]


def _cell_style(cell: _Cell) -> dict[str, Any]:
    """Return the scatter-trace settings that draw a cell of the given kind."""
    colour = KIND_COLOURS[cell.kind]
    transparent = "rgba(0,0,0,0)"
    if cell.kind in ("evaluated", "inherited"):
        assert cell.goodness is not None
        return {"fillcolor": _colour(cell.goodness), "line": {"color": "white", "width": 0.5}}
    if cell.kind == "gp":
        fill = _colour(cell.goodness) if cell.goodness is not None else transparent
        return {
            "fillcolor": fill,
            "fillpattern": {"shape": "/", "fgcolor": "black", "fgopacity": 0.6, "size": 6},
            "line": {"color": colour, "width": 1.5},
        }
    if cell.kind == "failed":
        return {
            "fillcolor": "lightgrey",
            "fillpattern": {"shape": "x", "fgcolor": colour, "size": 6},
            "line": {"color": colour, "width": 1},
        }
    if cell.kind == "running":
        return {"fillcolor": transparent, "line": {"color": colour, "width": 2}}
    return {"fillcolor": transparent, "line": {"color": colour, "width": 1.5, "dash": "dot"}}


def _round(u: float) -> float:
    # Eight decimals keep cells of 1e-8 of the axis apart and shorten the figure's JSON.
    return round(u, 8)


def _cell_text(cell: _Cell, info: _PartitionInfo) -> str:
    node = cell.node
    lines = [f"node {node.id} (depth {node.depth})", f"{KIND_LABELS[cell.kind]} cell"]
    if node.value is not None:
        lines.append(f"value {node.value:.6g}" + (" (GP bound)" if cell.kind == "gp" else ""))
    for axis in (info.x_axis, info.y_axis):
        if axis is not None:
            low, high = node.bounds[axis.name]
            lines.append(f"{axis.name} in [{format_value(low)}, {format_value(high)}]")
    return "<br>".join(lines)


def _2d_cell_traces(go: Any, info: _PartitionInfo) -> list[Any]:
    # One trace per cell: traces keep the draw order for fills and hatching alike (plotly
    # shapes cannot be hatched), and a filled trace shows its text on hover.
    traces = []
    legend_shown: set[str] = set()
    for cell in info.cells:
        assert cell.y is not None
        x0, x1 = _round(cell.x[0]), _round(cell.x[1])
        y0, y1 = _round(cell.y[0]), _round(cell.y[1])
        show_legend = cell.kind not in ("evaluated", "inherited") and cell.kind not in legend_shown
        legend_shown.add(cell.kind)
        traces.append(
            go.Scatter(
                x=[x0, x1, x1, x0, x0],
                y=[y0, y0, y1, y1, y0],
                mode="lines",
                fill="toself",
                hoveron="fills",
                text=_cell_text(cell, info),
                name=f"{KIND_LABELS[cell.kind]} cell",
                legendgroup=f"cell-{cell.kind}",
                legendrank=100 + KINDS.index(cell.kind),
                showlegend=show_legend,
                **_cell_style(cell),
            )
        )
    return traces


def _segments(cells: Sequence[_Cell]) -> tuple[list[float | None], list[float | None]]:
    xs: list[float | None] = []
    ys: list[float | None] = []
    for cell in cells:
        assert cell.node.value is not None
        xs.extend([cell.x[0], cell.x[1], None])
        ys.extend([cell.node.value, cell.node.value, None])
    return xs, ys


def _1d_cell_traces(go: Any, info: _PartitionInfo) -> list[Any]:
    traces = []
    low, high = info.value_range()
    for kind in ("failed", "running", "open"):
        bands = [cell for cell in info.cells if cell.kind == kind]
        if not bands:
            continue
        xs: list[float | None] = []
        ys: list[float | None] = []
        for cell in bands:
            x0, x1 = cell.x
            xs.extend([x0, x1, x1, x0, x0, None])
            ys.extend([low, low, high, high, low, None])
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                fill="toself",
                fillcolor=_with_alpha(KIND_COLOURS[kind], 0.15),
                line={"color": KIND_COLOURS[kind], "width": 1, "dash": "dot"},
                hoverinfo="skip",
                name=f"{KIND_LABELS[kind]} cell",
                meta={"role": "band", "kind": kind, "nodes": [cell.node.id for cell in bands]},
            )
        )
    groups = (
        ("evaluated or inherited cell", ("evaluated", "inherited"), "solid", "#444444"),
        ("GP-scored cell", ("gp",), "dash", KIND_COLOURS["gp"]),
    )
    for name, kinds, dash, colour in groups:
        segments = [
            cell
            for cell in info.cells
            if cell.kind in kinds
            and cell.node.value is not None
            and math.isfinite(cell.node.value)
        ]
        if not segments:
            continue
        xs, ys = _segments(segments)
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": colour, "width": 3, "dash": dash},
                hoverinfo="skip",
                name=name,
                meta={
                    "role": "segments",
                    "kind": kinds[-1],
                    "nodes": [c.node.id for c in segments],
                },
            )
        )
    return traces


def _with_alpha(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


# Marker of each kind of centre: (symbol, name in the legend).
_CENTRE_MARKERS = {
    "evaluated": ("circle", "evaluated centre"),
    "gp": ("diamond", "GP-scored centre"),
    "failed": ("x", "failed centre"),
    "running": ("hourglass", "running centre"),
    "open": ("circle-open", "open centre"),
}


def _centre_traces(go: Any, info: _PartitionInfo) -> list[Any]:
    traces = []
    scale = info.scale
    colorbar_shown = False
    for kind, (symbol, name) in _CENTRE_MARKERS.items():
        centres = [centre for centre in info.centres if centre.kind == kind]
        if not centres:
            continue
        marker: dict[str, Any] = {"symbol": symbol, "size": 7 if kind != "gp" else 9}
        if kind in ("evaluated", "gp") and scale is not None:
            marker.update(
                color=[centre.node.value for centre in centres],
                colorscale=COLOURSCALE,
                reversescale=not scale.maximize,
                cmin=scale.low,
                cmax=scale.high,
                line={"color": "black" if kind == "evaluated" else KIND_COLOURS["gp"], "width": 1},
            )
            if not colorbar_shown:
                marker.update(
                    showscale=True,
                    colorbar={"title": {"text": colorbar_title(scale), "side": "right"}},
                )
                colorbar_shown = True
        else:
            marker.update(color=KIND_COLOURS[kind])
        traces.append(
            go.Scatter(
                x=[centre.x for centre in centres],
                y=[centre.y for centre in centres],
                mode="markers",
                marker=marker,
                hovertext=[hover_text(centre.node) for centre in centres],
                hoverinfo="text",
                name=name,
                meta={"role": "centres", "kind": kind},
            )
        )
    if info.best is not None:
        traces.append(
            go.Scatter(
                x=[info.best.x],
                y=[info.best.y],
                mode="markers",
                marker={
                    "symbol": "star",
                    "size": 15,
                    "color": "red",
                    "line": {"color": "black", "width": 1},
                },
                hovertext=[hover_text(info.best.node)],
                hoverinfo="text",
                name="best evaluation",
                meta={"role": "best", "node": info.best.node.id},
            )
        )
    return traces


def _axis_layout(axis: AxisInfo) -> dict[str, Any]:
    return {
        "title": {"text": axis.title},
        "tickmode": "array",
        "tickvals": list(axis.tickvals),
        "ticktext": list(axis.ticktext),
        "range": [0.0, 1.0],
        "showgrid": False,
        "zeroline": False,
    }


def _layout(figure: go.Figure, info: _PartitionInfo) -> None:
    figure.update_layout(
        title={"text": info.title},
        xaxis=_axis_layout(info.x_axis),
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0.0},
        plot_bgcolor="white",
    )
    if info.y_axis is not None:
        # The unit square fills the plot area instead of staying square: the dashboard's plot
        # boxes are small, and the tick labels carry the scale.
        figure.update_layout(yaxis=_axis_layout(info.y_axis))
    else:
        figure.update_layout(
            yaxis={"title": {"text": info.value_title}, "range": list(info.value_range())}
        )
