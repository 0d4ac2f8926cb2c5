"""The partition tree: K-ary splits of the unit hypercube into cells.

Pure geometry and bookkeeping, with no Optuna import. A node's identity is its path from the
root (``"r"``, ``"r.0"``, ``"r.0.2"``), and its cell is a deterministic function of that path,
the axes and ``k``, so every process that expands the same nodes builds the same tree.

Cells are stored exactly, so that equality of centres never depends on rounding:

* a continuous axis holds ``(s, i)``, the interval ``[i / k**s, (i + 1) / k**s]``;
* a discrete axis holds ``(lo, hi)``, the allowed values with indices ``lo .. hi - 1``.

A node is split along its widest splittable axis, measured in the unit cube (ties go to the
axis that comes first). A continuous axis is cut into ``k`` equal parts. A discrete axis is cut
at ``k`` equal parts of its unit-cube interval, each value going to the part that holds its
position, and empty parts are dropped; a discrete axis is never cut below one value. A child
whose centre equals its parent's centre (the middle child when ``k`` is odd) inherits the
parent's value instead of being evaluated again.

The per-node fields ``status``, ``score``, ``source``, ``trial_number`` and ``failures`` are
filled in by the selection policy and the coordination layer; this module only stores them.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from fractions import Fraction
import numbers
from typing import Protocol


ROOT_ID = "r"

# A continuous axis is no longer split once its cell is narrower than this in the unit cube:
# below it, centres of neighbouring cells collide after mapping to float64 parameter values.
MIN_CONTINUOUS_WIDTH = 1e-12

# Node statuses.
OPEN = "open"  # Needs an evaluation, and no live trial has claimed it.
RUNNING = "running"  # Claimed by a trial that has not finished.
COMPLETE = "complete"  # Has a value (evaluated, inherited or scored by a surrogate).
FAILED = "failed"  # Every allowed attempt failed; it scores as the worst value.

# Sources of a node's value.
EVALUATED = "evaluated"
INHERITED = "inherited"
SURROGATE = "gp"


class Axis(Protocol):
    """Interface of one search-space axis, as the tree uses it."""

    @property
    def positions(self) -> tuple[float, ...] | None: ...

    @property
    def edges(self) -> tuple[float, ...] | None: ...


AxisCell = tuple[int, int]


class Node:
    """One cell of the partition.

    Attributes:
        id: Path from the root, e.g. ``"r.0.2"``.
        parent_id: The parent's id, ``None`` for the root.
        depth: Number of splits from the root.
        cell: One :data:`AxisCell` per axis (see the module docstring).
        seq: Creation order in the tree, used to break ties deterministically.
        children: Ids of the children, empty while the node is a leaf.
        inherits: Whether the node shares its parent's centre and takes the parent's value.
        status: One of ``open``, ``running``, ``complete`` or ``failed``.
        score: The value to maximise (the objective, negated when minimising), or ``None``.
        source: ``evaluated``, ``inherited`` or ``gp`` once ``score`` is known.
        trial_number: The trial that evaluated (or last attempted) the node.
        failures: Number of attempts that ended without a value.
    """

    __slots__ = (
        "id",
        "parent_id",
        "depth",
        "cell",
        "seq",
        "children",
        "inherits",
        "status",
        "score",
        "source",
        "trial_number",
        "failures",
    )

    def __init__(
        self, node_id: str, parent_id: str | None, depth: int, cell: tuple[AxisCell, ...], seq: int
    ) -> None:
        self.id = node_id
        self.parent_id = parent_id
        self.depth = depth
        self.cell = cell
        self.seq = seq
        self.children: list[str] = []
        self.inherits = False
        self.status = OPEN
        self.score: float | None = None
        self.source: str | None = None
        self.trial_number: int | None = None
        self.failures = 0

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def __repr__(self) -> str:
        return f"Node({self.id!r}, depth={self.depth}, status={self.status}, score={self.score})"


class PartitionTree:
    """A K-ary partition of the unit hypercube.

    Args:
        axes: One :class:`Axis` per dimension, in a fixed order.
        k: Number of parts a split makes. Must be at least 2.

    Raises:
        ValueError: If ``k`` is not an integer of at least 2 or ``axes`` is empty.
    """

    def __init__(self, axes: Sequence[Axis], k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
            raise ValueError(f"k must be an integer >= 2 (parts per split), got {k!r}.")
        if len(axes) == 0:
            raise ValueError("The partition tree needs at least one axis.")
        self.axes = tuple(axes)
        self.k = int(k)
        self._max_continuous_splits = 0
        while Fraction(1, k**self._max_continuous_splits) > MIN_CONTINUOUS_WIDTH:
            self._max_continuous_splits += 1
        root_cell = tuple(
            (0, 0) if axis.positions is None else (0, len(axis.positions)) for axis in self.axes
        )
        self.nodes: dict[str, Node] = {ROOT_ID: Node(ROOT_ID, None, 0, root_cell, 0)}
        self._next_seq = 1

    @property
    def root(self) -> Node:
        return self.nodes[ROOT_ID]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def leaves(self) -> Iterator[Node]:
        return (node for node in self.nodes.values() if node.is_leaf)

    def max_depth(self) -> int:
        return max(node.depth for node in self.nodes.values())

    # Geometry.

    def axis_width(self, axis_index: int, cell: AxisCell) -> float:
        """Width of one axis of a cell, in the unit cube."""
        axis = self.axes[axis_index]
        if axis.edges is None:
            return 1.0 / self.k ** cell[0]
        return axis.edges[cell[1]] - axis.edges[cell[0]]

    def axis_splittable(self, axis_index: int, cell: AxisCell) -> bool:
        if self.axes[axis_index].positions is None:
            return cell[0] < self._max_continuous_splits
        return cell[1] - cell[0] >= 2

    def split_axis(self, cell: tuple[AxisCell, ...]) -> int | None:
        """Return the axis a cell is split along, or ``None`` if no axis can be split."""
        best: int | None = None
        best_width = -1.0
        for index, axis_cell in enumerate(cell):
            if not self.axis_splittable(index, axis_cell):
                continue
            width = self.axis_width(index, axis_cell)
            if width > best_width:
                best, best_width = index, width
        return best

    def is_splittable(self, node: Node) -> bool:
        return self.split_axis(node.cell) is not None

    def centre_key(self, cell: tuple[AxisCell, ...]) -> tuple[Fraction | int, ...]:
        """Exact centre of a cell: a unit-cube fraction per continuous axis, an index otherwise."""
        return tuple(
            Fraction(2 * axis_cell[1] + 1, 2 * self.k ** axis_cell[0])
            if axis.positions is None
            else self._discrete_centre(axis, axis_cell)
            for axis, axis_cell in zip(self.axes, cell)
        )

    def centre_unit(self, cell: tuple[AxisCell, ...]) -> list[float | int]:
        """Centre of a cell: a unit-cube float per continuous axis, a value index otherwise."""
        return [float(c) if isinstance(c, Fraction) else c for c in self.centre_key(cell)]

    def axis_bounds(
        self, axis_index: int, cell: AxisCell
    ) -> tuple[float, float] | tuple[int, int]:
        """Bounds of one axis of a cell: unit-cube floats if continuous, else value indices.

        A discrete axis returns the first and last index of the values the cell holds.
        """
        if self.axes[axis_index].positions is None:
            s, i = cell
            return (i / self.k**s, (i + 1) / self.k**s)
        return (cell[0], cell[1] - 1)

    @staticmethod
    def _discrete_centre(axis: Axis, axis_cell: AxisCell) -> int:
        # The value whose position is nearest to the middle of the cell; ties go to the lower.
        assert axis.positions is not None and axis.edges is not None
        lo, hi = axis_cell
        middle = (axis.edges[lo] + axis.edges[hi]) / 2
        best, best_distance = lo, abs(axis.positions[lo] - middle)
        for index in range(lo + 1, hi):
            distance = abs(axis.positions[index] - middle)
            if distance < best_distance:
                best, best_distance = index, distance
        return best

    def _split_discrete(self, axis: Axis, axis_cell: AxisCell) -> list[tuple[int, AxisCell]]:
        assert axis.positions is not None and axis.edges is not None
        lo, hi = axis_cell
        low_edge, high_edge = axis.edges[lo], axis.edges[hi]
        parts: list[list[int]] = [[] for _ in range(self.k)]
        for index in range(lo, hi):
            fraction = (axis.positions[index] - low_edge) / (high_edge - low_edge)
            parts[min(max(int(fraction * self.k), 0), self.k - 1)].append(index)
        pieces = [(j, (part[0], part[-1] + 1)) for j, part in enumerate(parts) if part]
        if len(pieces) >= 2:
            return pieces
        # Positions bunched into one part (a log axis with few values): cut by count instead.
        m = hi - lo
        n_parts = min(self.k, m)
        bounds = [lo + (j * m) // n_parts for j in range(n_parts + 1)]
        return [(j, (bounds[j], bounds[j + 1])) for j in range(n_parts)]

    def child_cells(self, node: Node) -> list[tuple[str, tuple[AxisCell, ...]]]:
        """Return ``(id, cell)`` of each child a split of ``node`` makes, without adding them."""
        axis_index = self.split_axis(node.cell)
        if axis_index is None:
            return []
        axis = self.axes[axis_index]
        axis_cell = node.cell[axis_index]
        if axis.positions is None:
            s, i = axis_cell
            pieces = [(j, (s + 1, i * self.k + j)) for j in range(self.k)]
        else:
            pieces = self._split_discrete(axis, axis_cell)
        children = []
        for j, piece in pieces:
            cell = node.cell[:axis_index] + (piece,) + node.cell[axis_index + 1 :]
            children.append((f"{node.id}.{j}", cell))
        return children

    # Growth.

    def expand(self, node_id: str) -> list[Node]:
        """Split a leaf and add its children; return them in child order.

        Raises:
            KeyError: If ``node_id`` is not in the tree.
            ValueError: If the node is already expanded or cannot be split.
        """
        node = self.nodes[node_id]
        if node.children:
            raise ValueError(f"Node {node_id!r} is already expanded.")
        pieces = self.child_cells(node)
        if not pieces:
            raise ValueError(f"Node {node_id!r} cannot be split: every axis is down to one value.")
        parent_centre = self.centre_key(node.cell)
        created = []
        for child_id, cell in pieces:
            child = Node(child_id, node.id, node.depth + 1, cell, self._next_seq)
            self._next_seq += 1
            child.inherits = self.centre_key(cell) == parent_centre
            self.nodes[child_id] = child
            node.children.append(child_id)
            created.append(child)
        return created

    def parent(self, node: Node) -> Node | None:
        return None if node.parent_id is None else self.nodes[node.parent_id]
