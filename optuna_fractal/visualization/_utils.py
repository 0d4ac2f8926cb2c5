"""Helpers shared by the plotly and matplotlib plots of a partition tree.

Node kinds, axis ticks in parameter values, the value-to-colour mapping and hover text live
here, so that both backends draw the same picture from the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.study import Study
from optuna.study import StudyDirection

from optuna_fractal._search_space import Dimension
from optuna_fractal._search_space import make_dimension
from optuna_fractal._view import get_tree
from optuna_fractal._view import NodeView
from optuna_fractal._view import TreeView


if TYPE_CHECKING:
    from types import ModuleType


# Kinds of node, in the order legends list them. A node with a value is "evaluated",
# "inherited" (shares its parent's centre and value) or "gp" (scored by BaMSOO's surrogate
# instead of evaluated). A node without a value is "failed", "running" or "open".
KINDS = ("evaluated", "inherited", "gp", "failed", "running", "open")
VALUED_KINDS = ("evaluated", "inherited", "gp")

KIND_LABELS = {
    "evaluated": "evaluated",
    "inherited": "inherited",
    "gp": "GP-scored",
    "failed": "failed",
    "running": "running",
    "open": "open",
}

# Colours of the node kinds where colour does not encode the value (tree plot, outlines).
KIND_COLOURS = {
    "evaluated": "#1f77b4",
    "inherited": "#17becf",
    "gp": "#ff7f0e",
    "failed": "#d62728",
    "running": "#9467bd",
    "open": "#7f7f7f",
}

# Sequential colour map of cell values: the bright end is the better value.
COLOURSCALE = "Viridis"

# At most this many tick labels on a discrete axis; longer axes get evenly spread ticks.
_MAX_DISCRETE_TICKS = 12
_N_CONTINUOUS_TICKS = 5


def node_kind(node: NodeView) -> str:
    """Classify a node as one of :data:`KINDS`."""
    if node.value is not None and node.value_source in VALUED_KINDS:
        return node.value_source
    if node.state in ("failed", "running"):
        return node.state
    return "open"


def sampler_label(tree: TreeView) -> str:
    return {"soo": "SOO", "bamsoo": "BaMSOO"}.get(tree.sampler, tree.sampler)


def value_title(tree: TreeView) -> str:
    direction = "maximize" if tree.direction == StudyDirection.MAXIMIZE else "minimize"
    return f"Objective value ({direction})"


def resolve_tree(study: Study | TreeView, function_name: str) -> TreeView:
    """Return the tree of ``study`` (or ``study`` itself if it is a tree).

    Raises:
        TypeError: If ``study`` is neither a study nor a :class:`TreeView`.
        ValueError: If the tree has no node yet.
    """
    if isinstance(study, TreeView):
        tree = study
    elif isinstance(study, Study):
        tree = get_tree(study)
    else:
        raise TypeError(
            f"{function_name} expects an optuna.Study or an optuna_fractal.TreeView, got "
            f"{type(study).__name__}."
        )
    if not tree.nodes:
        raise ValueError(
            f"{function_name}: the study has no partition tree yet. Run it with SOOSampler or "
            "BaMSOOSampler for at least one trial, then plot it."
        )
    return tree


def best_node(tree: TreeView) -> NodeView | None:
    """Return the evaluated node with the best value in the study's direction."""
    evaluated = [
        node
        for node in tree.nodes
        if node.value_source == "evaluated"
        and node.value is not None
        and math.isfinite(node.value)
    ]
    if not evaluated:
        return None
    if tree.direction == StudyDirection.MAXIMIZE:
        return max(evaluated, key=lambda node: node.value)  # type: ignore[arg-type, return-value]
    return min(evaluated, key=lambda node: node.value)  # type: ignore[arg-type, return-value]


@dataclass(frozen=True)
class ValueScale:
    """The node values of a tree and the range that the colour map spans.

    Attributes:
        low: Low end of the colour range.
        high: High end of the colour range.
        maximize: Whether higher values are better.
        value_min: Lowest finite value.
        value_max: Highest finite value.
    """

    low: float
    high: float
    maximize: bool
    value_min: float
    value_max: float

    @property
    def clipped(self) -> bool:
        """Whether some values lie outside the colour range (and get its worst colour)."""
        return self.low > self.value_min or self.high < self.value_max

    def goodness(self, value: float) -> float:
        """Map a value to ``[0, 1]``, 1 being the best end of the colour range."""
        if self.high == self.low:
            better = value > self.low if self.maximize else value < self.low
            return 1.0 if value == self.low or better else 0.0
        fraction = (value - self.low) / (self.high - self.low)
        fraction = min(max(fraction, 0.0), 1.0)
        return fraction if self.maximize else 1.0 - fraction


# The colour range runs from the best value to this quantile of the values counted from the
# best end, so that a few very bad cells (diverged runs, say) do not squeeze the colours of the
# other cells together. Worse values get the worst colour.
COLOUR_QUANTILE = 0.9


def value_scale(tree: TreeView) -> ValueScale | None:
    """Return the tree's value range and colour range, ``None`` if no node has a finite value."""
    values = [
        node.value for node in tree.nodes if node.value is not None and math.isfinite(node.value)
    ]
    if not values:
        return None
    maximize = tree.direction == StudyDirection.MAXIMIZE
    value_min, value_max = min(values), max(values)
    if maximize:
        low, high = float(np.quantile(values, 1.0 - COLOUR_QUANTILE)), value_max
    else:
        low, high = value_min, float(np.quantile(values, COLOUR_QUANTILE))
    if low == high:
        low, high = value_min, value_max
    return ValueScale(low, high, maximize, value_min, value_max)


def colorbar_title(scale: ValueScale) -> str:
    if not scale.clipped:
        return "value"
    end = "above" if not scale.maximize else "below"
    worst = scale.high if not scale.maximize else scale.low
    return f"value ({end} {worst:.3g}: worst colour)"


@dataclass(frozen=True)
class AxisInfo:
    """An axis of a plot in unit-cube coordinates, labelled in parameter values.

    Attributes:
        name: Parameter name.
        title: Axis title: the name, marked ``(log)`` for a log-scaled parameter.
        tickvals: Tick positions in the unit cube.
        ticktext: Parameter value shown at each tick.
        dimension: The parameter's unit-cube axis.
    """

    name: str
    title: str
    tickvals: tuple[float, ...]
    ticktext: tuple[str, ...]
    dimension: Dimension

    def unit(self, value: Any) -> float:
        """Map a parameter value to its unit-cube coordinate on this axis."""
        return float(self.dimension.unit_of_value(value))


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_log(distribution: BaseDistribution) -> bool:
    return isinstance(distribution, (FloatDistribution, IntDistribution)) and distribution.log


def _log_ticks(dimension: Dimension, low: float, high: float) -> list[float]:
    """Parameter values at powers of ten inside ``[low, high]``, with 2 and 5 on short axes."""
    first = math.ceil(math.log10(low) - 1e-9)
    last = math.floor(math.log10(high) + 1e-9)
    mantissas = (1.0,) if last - first >= 2 else (1.0, 2.0, 5.0)
    values = [
        mantissa * 10.0**exponent
        for exponent in range(first - 1, last + 1)
        for mantissa in mantissas
        if low * (1 - 1e-9) <= mantissa * 10.0**exponent <= high * (1 + 1e-9)
    ]
    if len(values) < 2:
        values = [low, high]
    return values


def axis_info(name: str, distribution: BaseDistribution) -> AxisInfo:
    """Build the ticks of a parameter's axis.

    Continuous parameters get evenly spaced ticks (powers of ten for log parameters), discrete
    ones a tick per value, thinned to about a dozen evenly spaced values on long axes.
    """
    dimension = make_dimension(name, distribution)
    title = f"{name} (log)" if _is_log(distribution) else name
    tickvals: list[float] = []
    ticktext: list[str] = []
    if dimension.is_continuous:
        assert isinstance(distribution, FloatDistribution)
        if distribution.log:
            values: list[Any] = _log_ticks(dimension, distribution.low, distribution.high)
            tickvals = [dimension.unit_of_value(value) for value in values]
        else:
            tickvals = [i / (_N_CONTINUOUS_TICKS - 1) for i in range(_N_CONTINUOUS_TICKS)]
            values = [dimension.value_at_unit(u) for u in tickvals]
        ticktext = [format_value(value) for value in values]
    else:
        assert dimension.positions is not None
        positions = dimension.positions
        if len(positions) <= _MAX_DISCRETE_TICKS:
            indices = list(range(len(positions)))
        else:
            # The value nearest to each of evenly spaced unit-cube targets: on a log axis the
            # positions are log-spaced, so the ticks come out log-spaced too.
            targets = [i / (_MAX_DISCRETE_TICKS // 2) for i in range(_MAX_DISCRETE_TICKS // 2 + 1)]
            indices = sorted(
                {min(range(len(positions)), key=lambda i: abs(positions[i] - t)) for t in targets}
            )
        tickvals = [positions[i] for i in indices]
        ticktext = [format_value(dimension.value_at_index(i)) for i in indices]
        if isinstance(distribution, CategoricalDistribution):
            ticktext = [str(distribution.choices[i]) for i in indices]
    return AxisInfo(name, title, tuple(tickvals), tuple(ticktext), dimension)


def _has_range(name: str, distribution: BaseDistribution) -> bool:
    n_values = make_dimension(name, distribution).n_values
    return n_values is None or n_values > 1


def resolve_params(
    tree: TreeView, params: tuple[str, ...] | list[str] | str | None, function_name: str
) -> tuple[str, ...]:
    """Return the one or two parameters to plot, checked against the tree's search space.

    The default is the first two parameters with more than one value (search-space order,
    which is sorted by name), or the only such parameter of a 1-D study.

    Raises:
        ValueError: If ``params`` has an unknown name, a repeated name or the wrong length.
    """
    names = list(tree.search_space)
    if not names:
        raise ValueError(
            f"{function_name}: the study's search space is not known yet. Wait until its first "
            "trial has finished."
        )
    if params is None:
        varying = [name for name in names if _has_range(name, tree.search_space[name])]
        chosen = varying or names
        return tuple(chosen[:2])
    if isinstance(params, str):
        params = (params,)
    params = tuple(params)
    unknown = [name for name in params if name not in tree.search_space]
    if unknown:
        raise ValueError(
            f"{function_name}: unknown parameter(s) {unknown}. The study's parameters are {names}."
        )
    if len(params) not in (1, 2):
        raise ValueError(
            f"{function_name}: params must name one or two parameters, got {list(params)}. "
            f"Choose from {names}."
        )
    if len(set(params)) != len(params):
        raise ValueError(
            f"{function_name}: params names {params[0]!r} twice. Give two different parameters "
            f"from {names}, or one for a 1-D plot."
        )
    return params


def hover_text(node: NodeView) -> str:
    """Describe a node on several lines, for hover labels (``<br>`` separated)."""
    kind = node_kind(node)
    lines = [f"node {node.id} (depth {node.depth})", f"{KIND_LABELS[kind]}, {node.state}"]
    if node.value is not None:
        source = " (GP bound)" if kind == "gp" else ""
        lines.append(f"value {node.value:.6g}{source}")
    if node.trial_number is not None:
        lines.append(f"trial {node.trial_number}")
    for name, value in node.params.items():
        lines.append(f"{name} = {format_value(value)}")
    return "<br>".join(lines)


def import_plotly(function_name: str) -> ModuleType:
    """Import ``plotly.graph_objects`` with an install hint if plotly is missing."""
    try:
        import plotly.graph_objects as go
    except ImportError as error:
        raise ImportError(
            f"{function_name} needs plotly. Install it with `pip install "
            "optuna-fractal[dashboard]` (or `pip install plotly`)."
        ) from error
    return go


def import_pyplot(function_name: str) -> ModuleType:
    """Import ``matplotlib.pyplot`` with an install hint if matplotlib is missing."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"{function_name} needs matplotlib. Install it with `pip install "
            "optuna-fractal[dashboard]` (or `pip install matplotlib`)."
        ) from error
    return plt
