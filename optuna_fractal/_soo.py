"""The SOO sweep: which node to expand next and which cell to evaluate next.

Pure selection policy on a :class:`~optuna_fractal._tree.PartitionTree`, with no Optuna import.
Scores are maximised; the sampler negates the objective of a minimisation study.

The sweep is the one of Munos (2011), made incremental so that each call returns one cell to
evaluate. A :class:`SweepCursor` records the position of the current sweep (depth, best value
expanded so far), so that the sweep can be resumed by any process from stored state.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import math
from typing import Any
from typing import Protocol

from optuna_fractal._tree import COMPLETE
from optuna_fractal._tree import FAILED
from optuna_fractal._tree import Node
from optuna_fractal._tree import OPEN
from optuna_fractal._tree import PartitionTree
from optuna_fractal._tree import RUNNING
from optuna_fractal._tree import SURROGATE


# One decision expands at most this many nodes whose children all get surrogate scores. Past it,
# the next child is evaluated for real, so a pessimistic surrogate cannot grow the tree without
# bound inside one call. The limit also keeps a stored decision well under MySQL's 64 KiB TEXT.
MAX_SCORED_EXPANSIONS = 100


@dataclass
class SweepCursor:
    """Position of the current SOO sweep.

    Attributes:
        sweep: Number of the current sweep, starting at 1 (0 before the first).
        depth: The next depth the sweep looks at.
        vmax: Best score expanded so far in this sweep (``-inf`` at its start).
        depth_limit: Deepest depth this sweep visits.
        expanded: Whether this sweep has expanded a node yet.
    """

    sweep: int = 0
    depth: int = 0
    vmax: float = -math.inf
    depth_limit: int = -1
    expanded: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "depth": self.depth,
            "vmax": None if self.vmax == -math.inf else self.vmax,
            "depth_limit": self.depth_limit,
            "expanded": self.expanded,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepCursor:
        vmax = data["vmax"]
        return cls(
            sweep=int(data["sweep"]),
            depth=int(data["depth"]),
            vmax=-math.inf if vmax is None else float(vmax),
            depth_limit=int(data["depth_limit"]),
            expanded=bool(data["expanded"]),
        )


class Gate(Protocol):
    """Chooses which new children get a surrogate score instead of an evaluation.

    BaMSOO's UCB test is one. Returns the surrogate score of each child it will not evaluate.
    """

    def __call__(self, tree: PartitionTree, children: Sequence[Node]) -> dict[str, float]: ...


@dataclass
class Decision:
    """Outcome of one call of :func:`decide`.

    Attributes:
        node_id: The node to evaluate, or ``None`` when nothing is left to evaluate.
        expanded: Ids of the nodes expanded by this call, in order.
        scored: Surrogate scores given to new nodes by this call.
        cursor: The sweep cursor after this call.
    """

    node_id: str | None
    expanded: list[str] = field(default_factory=list)
    scored: dict[str, float] = field(default_factory=dict)
    cursor: SweepCursor = field(default_factory=SweepCursor)


def resolve_inherited(tree: PartitionTree, nodes: Sequence[Node] | None = None) -> None:
    """Copy the parent's status and value into every child that shares its centre.

    Parents must come before children in ``nodes`` (creation order does this).
    """
    for node in tree if nodes is None else nodes:
        if not node.inherits:
            continue
        parent = tree.nodes[node.parent_id]  # type: ignore[index]
        node.trial_number = parent.trial_number
        if parent.status == OPEN:
            # The parent's retry is pending; the shared point is not known yet.
            node.status, node.score, node.source = RUNNING, None, None
        else:
            node.status, node.score = parent.status, parent.score
            node.source = (
                SURROGATE
                if parent.source == SURROGATE
                else ("inherited" if parent.status == COMPLETE else None)
            )


def selection_score(tree: PartitionTree, node: Node) -> float | None:
    """Score a leaf competes with in the sweep, ``None`` if it cannot compete yet.

    A running node competes with its nearest ancestor's value (``-inf`` under a running root):
    this lets the sweep go on around cells that other workers are still evaluating.
    """
    if node.status == COMPLETE:
        return node.score
    if node.status == FAILED:
        return -math.inf
    if node.status == RUNNING:
        ancestor = tree.parent(node)
        while ancestor is not None:
            if ancestor.status == COMPLETE and ancestor.score is not None:
                return ancestor.score
            ancestor = tree.parent(ancestor)
        return -math.inf
    return None


def _expandable(tree: PartitionTree, node: Node, max_depth: int | None) -> bool:
    if not node.is_leaf:
        return False
    if max_depth is not None and node.depth >= max_depth:
        return False
    return tree.is_splittable(node)


def open_nodes(tree: PartitionTree) -> list[Node]:
    """Nodes waiting for an evaluation, oldest first."""
    return sorted((n for n in tree if n.status == OPEN and not n.inherits), key=lambda n: n.seq)


def decide(
    tree: PartitionTree,
    cursor: SweepCursor,
    *,
    max_depth: int | None = None,
    h_max: Callable[[int], float] | None = None,
    n_evaluations: int = 0,
    gate: Gate | None = None,
) -> Decision:
    """Pick the next cell to evaluate, expanding nodes as the SOO sweep says.

    Steps:

    1. If a node is waiting for an evaluation (a new child, or a failed cell to retry), return
       the oldest one.
    2. Otherwise continue the sweep: at depth ``h``, take the best expandable leaf; if its score
       is at least ``vmax``, expand it and set ``vmax`` to its score; move to ``h + 1``.
    3. When the sweep passes its depth limit, start a new one with ``vmax = -inf`` and depth limit
       ``min(deepest node, h_max(n_evaluations))``. A sweep that expanded nothing lifts the
       ``h_max`` limit for the next one, so that a small ``h_max`` cannot stall the search.
    4. Children that share the parent's centre take its value; the gate (BaMSOO) may score other
       children with a surrogate; the first remaining child is returned for evaluation.

    ``tree`` and ``cursor`` are changed in place.

    Args:
        tree: The partition tree with up-to-date node statuses.
        cursor: Where the sweep stands.
        max_depth: Nodes at this depth are never expanded. ``None`` means no limit.
        h_max: Maximum depth a sweep visits, as a function of the number of evaluations.
        n_evaluations: Number of real evaluations so far, the argument of ``h_max``.
        gate: Optional surrogate test for new children.

    Returns:
        The decision; ``node_id`` is ``None`` when no leaf can be expanded any more.
    """
    waiting = open_nodes(tree)
    if waiting:
        return Decision(waiting[0].id, cursor=cursor)

    decision = Decision(None, cursor=cursor)
    scored_expansions = 0
    while True:
        if cursor.depth > cursor.depth_limit:
            if not any(_expandable(tree, leaf, max_depth) for leaf in tree.leaves()):
                return decision
            limit = tree.max_depth()
            lift_limit = cursor.sweep > 0 and not cursor.expanded
            if h_max is not None and not lift_limit:
                limit = min(limit, max(0, math.floor(h_max(n_evaluations))))
            new = SweepCursor(cursor.sweep + 1, 0, -math.inf, limit, False)
            cursor.sweep, cursor.depth, cursor.vmax = new.sweep, new.depth, new.vmax
            cursor.depth_limit, cursor.expanded = new.depth_limit, new.expanded

        depth = cursor.depth
        cursor.depth += 1
        best: Node | None = None
        best_score = -math.inf
        for leaf in tree.leaves():
            if leaf.depth != depth or not _expandable(tree, leaf, max_depth):
                continue
            score = selection_score(tree, leaf)
            if score is None:
                continue
            if best is None or score > best_score or (score == best_score and leaf.seq < best.seq):
                best, best_score = leaf, score
        if best is None or best_score < cursor.vmax:
            continue

        cursor.vmax = best_score
        cursor.expanded = True
        children = tree.expand(best.id)
        decision.expanded.append(best.id)
        resolve_inherited(tree, children)
        to_evaluate = [child for child in children if not child.inherits]
        if gate is not None and scored_expansions < MAX_SCORED_EXPANSIONS and to_evaluate:
            scores = gate(tree, to_evaluate)
            for child in to_evaluate:
                if child.id in scores:
                    child.status, child.score, child.source = COMPLETE, scores[child.id], SURROGATE
                    decision.scored[child.id] = scores[child.id]
            # The centre child of a scored parent shares the parent's surrogate score.
            resolve_inherited(tree, children)
            to_evaluate = [child for child in to_evaluate if child.id not in scores]
            if not to_evaluate:
                scored_expansions += 1
        if to_evaluate:
            decision.node_id = to_evaluate[0].id
            return decision
