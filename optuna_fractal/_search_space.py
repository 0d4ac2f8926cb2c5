"""Encoding of Optuna distributions as dimensions of the unit hypercube.

Every parameter becomes one axis of ``[0, 1]``. Continuous floats (linear or log) stay
continuous. Every other distribution has a finite, ordered list of values (ints, stepped
floats, categorical choices) and becomes a *discrete* axis: value ``i`` owns the bin
``[edges[i], edges[i + 1])`` and sits at ``positions[i]``. For linear axes the bins are equal;
for ``IntDistribution(log=True)`` they are equal in log space, so that splitting the axis in the
unit cube splits the integers in log space.

This module knows Optuna's distributions and nothing else of Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import math
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


@dataclass(frozen=True)
class Dimension:
    """One parameter of the search space as an axis of the unit cube.

    Attributes:
        name: Parameter name.
        distribution: The Optuna distribution the axis encodes.
        positions: For a discrete axis, the unit-cube position of each allowed value in
            increasing order; ``None`` for a continuous axis.
        edges: For a discrete axis, the ``n + 1`` bin edges in the unit cube (``edges[0] == 0``,
            ``edges[-1] == 1``); ``None`` for a continuous axis.
    """

    name: str
    distribution: BaseDistribution
    positions: tuple[float, ...] | None
    edges: tuple[float, ...] | None

    @property
    def is_continuous(self) -> bool:
        return self.positions is None

    @property
    def n_values(self) -> int | None:
        """Number of allowed values of a discrete axis, ``None`` for a continuous axis."""
        return None if self.positions is None else len(self.positions)

    def value_at_unit(self, u: float) -> Any:
        """Map a unit-cube coordinate of a continuous axis to a parameter value."""
        dist = self.distribution
        assert isinstance(dist, FloatDistribution) and dist.step is None
        u = min(max(u, 0.0), 1.0)
        if dist.log:
            log_low = math.log(dist.low)
            log_high = math.log(dist.high)
            value = math.exp(log_low + u * (log_high - log_low))
        else:
            value = dist.low + u * (dist.high - dist.low)
        return float(min(max(value, dist.low), dist.high))

    def value_at_index(self, index: int) -> Any:
        """Map the index of an allowed value of a discrete axis to the parameter value."""
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[index]
        if isinstance(dist, IntDistribution):
            return int(dist.low + index * dist.step)
        assert isinstance(dist, FloatDistribution)
        if dist.step is None:
            # A single-point continuous float is encoded as a one-value discrete axis.
            return float(dist.low)
        return float(min(dist.low + index * dist.step, dist.high))

    def unit_of_value(self, value: Any) -> float:
        """Map a parameter value to its unit-cube coordinate (the bin position if discrete)."""
        dist = self.distribution
        if self.positions is not None:
            return self.positions[self.index_of_value(value)]
        assert isinstance(dist, FloatDistribution)
        if dist.log:
            return (math.log(value) - math.log(dist.low)) / (
                math.log(dist.high) - math.log(dist.low)
            )
        return (value - dist.low) / (dist.high - dist.low)

    def index_of_value(self, value: Any) -> int:
        """Return the index of the allowed value nearest to ``value`` on a discrete axis."""
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return int(dist.to_internal_repr(value))
        assert self.positions is not None
        step = getattr(dist, "step", None) or 1
        index = int(round((float(value) - dist.low) / step))
        return min(max(index, 0), len(self.positions) - 1)


def _discrete_layout(dist: BaseDistribution) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Return ``(positions, edges)`` of a discrete distribution, ``None`` if continuous."""
    if isinstance(dist, CategoricalDistribution):
        n = len(dist.choices)
    elif isinstance(dist, IntDistribution):
        if dist.log:
            # Integer v owns [v - 0.5, v + 0.5] in log space, as in Optuna's own transform.
            low = math.log(dist.low - 0.5)
            span = math.log(dist.high + 0.5) - low
            values = range(dist.low, dist.high + 1)
            edges = [(math.log(v - 0.5) - low) / span for v in values] + [1.0]
            edges[0] = 0.0
            positions = [(math.log(v) - low) / span for v in values]
            return tuple(positions), tuple(edges)
        n = (dist.high - dist.low) // dist.step + 1
    elif isinstance(dist, FloatDistribution):
        if dist.step is None:
            if dist.low == dist.high:
                n = 1
            else:
                return None
        else:
            n = int(round((dist.high - dist.low) / dist.step)) + 1
    else:
        raise TypeError(
            f"Unsupported distribution {dist!r}: use FloatDistribution, IntDistribution or "
            "CategoricalDistribution."
        )
    positions = tuple((i + 0.5) / n for i in range(n))
    edges = tuple(i / n for i in range(n + 1))
    return positions, edges


def make_dimension(name: str, distribution: BaseDistribution) -> Dimension:
    """Build the unit-cube axis of one parameter."""
    layout = _discrete_layout(distribution)
    if layout is None:
        return Dimension(name, distribution, None, None)
    positions, edges = layout
    return Dimension(name, distribution, positions, edges)


class SearchSpace:
    """An ordered set of :class:`Dimension` built from Optuna distributions.

    Parameters are ordered by name, so that two processes given the same distributions in any
    order build the same axes.

    Args:
        distributions: Parameter name to Optuna distribution.

    Raises:
        ValueError: If ``distributions`` is empty.
    """

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        if len(distributions) == 0:
            raise ValueError(
                "The search space is empty: the objective suggested no parameter. Suggest at "
                "least one parameter or pass a non-empty `search_space`."
            )
        self.distributions: dict[str, BaseDistribution] = {
            name: distributions[name] for name in sorted(distributions)
        }
        self.dimensions: tuple[Dimension, ...] = tuple(
            make_dimension(name, dist) for name, dist in self.distributions.items()
        )

    def __len__(self) -> int:
        return len(self.dimensions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.distributions == other.distributions

    def __hash__(self) -> int:
        return hash(tuple(self.distributions.items()))

    @property
    def names(self) -> list[str]:
        return list(self.distributions)

    def n_splittable(self) -> int:
        """Return how many axes have more than one value."""
        return sum(1 for d in self.dimensions if d.n_values is None or d.n_values > 1)
