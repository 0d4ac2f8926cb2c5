"""``plot_tree``: every node of a partition tree, by depth and value."""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any
from typing import TYPE_CHECKING

from optuna.study import StudyDirection

from optuna_fractal._view import NodeView
from optuna_fractal._view import TreeView
from optuna_fractal.visualization._utils import best_node
from optuna_fractal.visualization._utils import hover_text
from optuna_fractal.visualization._utils import import_plotly
from optuna_fractal.visualization._utils import KIND_COLOURS
from optuna_fractal.visualization._utils import KIND_LABELS
from optuna_fractal.visualization._utils import KINDS
from optuna_fractal.visualization._utils import node_kind
from optuna_fractal.visualization._utils import resolve_tree
from optuna_fractal.visualization._utils import sampler_label
from optuna_fractal.visualization._utils import value_scale
from optuna_fractal.visualization._utils import value_title


if TYPE_CHECKING:
    from optuna.study import Study
    import plotly.graph_objects as go


# Plotly marker symbol of each node kind. Expanded nodes use the hollow variant.
KIND_SYMBOLS = {
    "evaluated": "circle",
    "inherited": "triangle-up",
    "gp": "diamond",
    "failed": "x",
    "running": "hourglass",
    "open": "square",
}

NO_VALUE_LABEL = "no finite value (failed, running, open or infinite)"


@dataclass(frozen=True)
class _TreePoint:
    """A node at ``(depth, value)``; nodes without a value sit on the no-value row."""

    node: NodeView
    kind: str
    x: int
    y: float


@dataclass(frozen=True)
class _TreeInfo:
    tree: TreeView
    points: tuple[_TreePoint, ...]
    edges: tuple[tuple[_TreePoint, _TreePoint], ...]
    no_value_y: float | None
    best_value: float | None
    title: str
    value_title: str

    def groups(self) -> list[tuple[str, bool, list[_TreePoint]]]:
        """Return the points grouped by ``(kind, expanded)``, in legend order, without empties."""
        groups = []
        for kind in KINDS:
            for expanded in (False, True):
                points = [p for p in self.points if p.kind == kind and p.node.expanded == expanded]
                if points:
                    groups.append((kind, expanded, points))
        return groups


def group_label(kind: str, expanded: bool) -> str:
    return f"{KIND_LABELS[kind]}, {'expanded' if expanded else 'leaf'}"


def _no_value_y(tree: TreeView) -> float:
    """Return the y of the row for nodes without a value, a tenth of the range past the worst."""
    scale = value_scale(tree)
    if scale is None:
        return 0.0
    low, high = scale.value_min, scale.value_max
    gap = 0.1 * (high - low) if high > low else max(abs(high) * 0.1, 1.0)
    return low - gap if scale.maximize else high + gap


def _get_tree_info(study: Study | TreeView, function_name: str) -> _TreeInfo:
    tree = resolve_tree(study, function_name)
    no_value_y = _no_value_y(tree)
    points: dict[str, _TreePoint] = {}
    for node in tree.nodes:
        kind = node_kind(node)
        y = node.value if node.value is not None and math.isfinite(node.value) else no_value_y
        points[node.id] = _TreePoint(node, kind, node.depth, y)
    edges = tuple(
        (points[node.parent_id], points[node.id])
        for node in tree.nodes
        if node.parent_id is not None and node.parent_id in points
    )
    has_no_value = any(node.value is None or not math.isfinite(node.value) for node in tree.nodes)
    best = best_node(tree)
    title = (
        f"{sampler_label(tree)} tree (k={tree.k}): {len(tree.nodes)} nodes, "
        f"depth {tree.max_depth}, {tree.n_evaluated} evaluations"
    )
    return _TreeInfo(
        tree=tree,
        points=tuple(points.values()),
        edges=edges,
        no_value_y=no_value_y if has_no_value else None,
        best_value=best.value if best is not None else None,
        title=title,
        value_title=value_title(tree),
    )


def plot_tree(study: Study | TreeView) -> go.Figure:
    """Plot every node of a study's partition tree at its depth and value, with plotly.

    Lines join each node to its parent. The marker shape gives where the value comes from.
    Circles are evaluations and triangles values inherited from the parent, because the
    middle child of an odd split shares its parent's centre. Diamonds are values scored by
    BaMSOO's Gaussian process. Crosses mark failed nodes, hourglasses running nodes and
    squares open nodes. Leaves are filled, expanded nodes hollow. Nodes without a finite value
    sit on a dotted row past the worst value, and a dashed line marks the best evaluation.

    SOO expands, at each depth, the best leaf that beats the leaves expanded at smaller depths
    in the same sweep; this plot shows that competition directly.

    Example:
        ```python
        import optuna
        from optuna_fractal import SOOSampler
        from optuna_fractal.visualization import plot_tree

        study = optuna.create_study(sampler=SOOSampler())
        study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=30)
        plot_tree(study).write_html("tree.html")
        ```

    Args:
        study: A study run by :class:`~optuna_fractal.SOOSampler` or
            :class:`~optuna_fractal.BaMSOOSampler`, or a :class:`~optuna_fractal.TreeView`
            from :func:`~optuna_fractal.get_tree`.

    Returns:
        A :class:`plotly.graph_objects.Figure`.

    Raises:
        ValueError: If the study has no tree yet.
        TypeError: If ``study`` is neither a study nor a tree.
        ImportError: If plotly is not installed.
    """
    go = import_plotly("plot_tree")
    info = _get_tree_info(study, "plot_tree")
    figure = go.Figure()

    xs: list[float | None] = []
    ys: list[float | None] = []
    for parent, child in info.edges:
        xs.extend([parent.x, child.x, None])
        ys.extend([parent.y, child.y, None])
    figure.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": "#bbbbbb", "width": 1},
            hoverinfo="skip",
            showlegend=False,
            name="parent to child",
            meta={"role": "edges"},
        )
    )

    for kind, expanded, points in info.groups():
        symbol = KIND_SYMBOLS[kind] + ("-open" if expanded else "")
        figure.add_trace(
            go.Scatter(
                x=[point.x for point in points],
                y=[point.y for point in points],
                mode="markers",
                marker=_marker(kind, symbol),
                hovertext=[hover_text(point.node) for point in points],
                hoverinfo="text",
                name=group_label(kind, expanded),
                meta={"role": "nodes", "kind": kind, "expanded": expanded},
            )
        )

    maximize = info.tree.direction == StudyDirection.MAXIMIZE
    if info.best_value is not None:
        figure.add_hline(
            y=info.best_value,
            line={"color": "red", "width": 1, "dash": "dash"},
            annotation_text=f"best {info.best_value:.6g}",
            # On the side of the line away from the other nodes.
            annotation_position="top right" if maximize else "bottom right",
        )
    if info.no_value_y is not None:
        figure.add_hline(
            y=info.no_value_y,
            line={"color": KIND_COLOURS["open"], "width": 1, "dash": "dot"},
            annotation_text=NO_VALUE_LABEL,
            annotation_position="top right",
        )

    figure.update_layout(
        title={"text": info.title},
        xaxis={"title": {"text": "Depth"}, "dtick": 1, "zeroline": False},
        yaxis={"title": {"text": info.value_title}},
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0.0},
        plot_bgcolor="white",
    )
    figure.update_yaxes(showgrid=True, gridcolor="#eeeeee")
    return figure


def _marker(kind: str, symbol: str) -> dict[str, Any]:
    size = 11 if kind in ("gp", "failed", "running") else 9
    return {
        "symbol": symbol,
        "size": size,
        "color": KIND_COLOURS[kind],
        "line": {"color": KIND_COLOURS[kind], "width": 1.5},
    }
