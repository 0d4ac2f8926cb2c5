"""``get_tree``: a read-only view of a study's partition tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import TYPE_CHECKING

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection

from optuna_fractal._coordination import CONFIG_KEY
from optuna_fractal._coordination import load_search_space
from optuna_fractal._search_space import SearchSpace
from optuna_fractal._state import TreeState


if TYPE_CHECKING:
    from optuna.study import Study


@dataclass(frozen=True)
class NodeView:
    """One cell of a study's partition tree.

    Attributes:
        id: Path from the root: ``"r"`` is the root, ``"r.0.2"`` the third child of the root's
            first child.
        parent_id: The parent's id, ``None`` for the root.
        depth: Number of splits from the root.
        bounds: Per parameter, the cell's lowest and highest value in parameter space. For a
            categorical parameter, the first and last choice the cell holds.
        unit_bounds: Per parameter, the cell's interval in the unit cube the tree splits (log
            parameters in log space), handy for drawing cells.
        choices: Per categorical parameter, the choices the cell holds.
        params: Parameter values at the cell's centre, where it is evaluated.
        value: The objective value of the centre, in the study's own direction: evaluated,
            inherited from the parent, or, for a GP-scored node, the surrogate's bound.
            ``None`` while unknown.
        value_source: ``"evaluated"``, ``"inherited"``, ``"gp"`` or ``None``.
        state: ``"open"`` (waiting for a trial), ``"running"``, ``"complete"`` or ``"failed"``
            (every allowed attempt failed).
        expanded: Whether the node has been split.
        trial_number: The trial that evaluated (or last attempted) the node; for an inherited
            node, the parent's trial.
        inherits: Whether the node shares its parent's centre and takes the parent's value
            (evaluated, GP-scored or pending alike).
    """

    id: str
    parent_id: str | None
    depth: int
    bounds: dict[str, tuple[Any, Any]]
    unit_bounds: dict[str, tuple[float, float]]
    choices: dict[str, tuple[Any, ...]]
    params: dict[str, Any]
    value: float | None
    value_source: str | None
    state: str
    expanded: bool
    trial_number: int | None
    inherits: bool = False


@dataclass(frozen=True)
class TreeView:
    """A study's partition tree, as :func:`get_tree` returns it.

    Attributes:
        nodes: Every node in creation order, the root first; empty before the first decision.
        search_space: The distributions the tree partitions (empty before it is known).
        k: Parts per split.
        sampler: ``"soo"`` or ``"bamsoo"``.
        direction: The study's direction.
    """

    nodes: tuple[NodeView, ...]
    search_space: dict[str, BaseDistribution]
    k: int
    sampler: str
    direction: StudyDirection

    def node(self, node_id: str) -> NodeView:
        """Return the node with id ``node_id``.

        Raises:
            KeyError: If the tree has no such node.
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"The tree has no node {node_id!r}.")

    def leaves(self) -> list[NodeView]:
        return [node for node in self.nodes if not node.expanded]

    @property
    def max_depth(self) -> int:
        return max((node.depth for node in self.nodes), default=0)

    @property
    def n_evaluated(self) -> int:
        return sum(1 for node in self.nodes if node.value_source == "evaluated")

    @property
    def n_inherited(self) -> int:
        return sum(1 for node in self.nodes if node.value_source == "inherited")

    @property
    def n_gp_scored(self) -> int:
        """Nodes valued by the surrogate instead of an evaluation: the evaluations BaMSOO saved.

        The middle child of a GP-scored node shares its score but saves no evaluation, so it is
        not counted.
        """
        return sum(1 for node in self.nodes if node.value_source == "gp" and not node.inherits)


def _node_view(state: TreeState, node: Any, maximize: bool) -> NodeView:
    tree = state.tree
    bounds: dict[str, tuple[Any, Any]] = {}
    unit_bounds: dict[str, tuple[float, float]] = {}
    choices: dict[str, tuple[Any, ...]] = {}
    for index, (dim, axis_cell) in enumerate(zip(state.space.dimensions, node.cell)):
        low, high = tree.axis_bounds(index, axis_cell)
        if dim.is_continuous:
            bounds[dim.name] = (dim.value_at_unit(float(low)), dim.value_at_unit(float(high)))
            unit_bounds[dim.name] = (float(low), float(high))
        else:
            assert dim.edges is not None
            bounds[dim.name] = (dim.value_at_index(int(low)), dim.value_at_index(int(high)))
            unit_bounds[dim.name] = (dim.edges[int(low)], dim.edges[int(high) + 1])
            if isinstance(dim.distribution, CategoricalDistribution):
                choices[dim.name] = tuple(dim.distribution.choices[int(low) : int(high) + 1])
    value = None
    if node.score is not None:
        value = node.score if maximize else -node.score
    return NodeView(
        id=node.id,
        parent_id=node.parent_id,
        depth=node.depth,
        bounds=bounds,
        unit_bounds=unit_bounds,
        choices=choices,
        params=dict(state.centre(node)),
        value=value,
        value_source=node.source,
        state=node.status,
        expanded=bool(node.children),
        trial_number=node.trial_number,
        inherits=node.inherits,
    )


def get_tree(study: Study) -> TreeView:
    """Rebuild the partition tree of a study from its storage.

    Works in any process with access to the study's storage, for studies run by
    :class:`~optuna_fractal.SOOSampler` or :class:`~optuna_fractal.BaMSOOSampler`. Nothing is
    written. The visualisation functions and the dashboard notes are built on this view.

    Example:
        ```python
        import optuna
        from optuna_fractal import SOOSampler, get_tree

        study = optuna.create_study(sampler=SOOSampler())
        study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=10)
        tree = get_tree(study)
        for node in tree.nodes:
            print(node.id, node.depth, node.bounds["x"], node.value, node.value_source)
        ```

    Args:
        study: A single-objective study.

    Returns:
        The tree. It has no nodes if no partition sampler has made a decision in the study yet.
    """
    from optuna_fractal._sampler import _PartitionSampler

    attrs = study._storage.get_study_system_attrs(study._study_id)
    config = attrs.get(CONFIG_KEY) or {}
    distributions = load_search_space(study)
    sampler = getattr(study, "sampler", None)
    if distributions is None and isinstance(sampler, _PartitionSampler):
        if sampler._space is not None:
            distributions = sampler._space.distributions
    k = int(config.get("k", getattr(sampler, "_k", 3)))
    kind = str(config.get("kind", getattr(sampler, "_KIND", "soo")))
    if distributions is None or not config:
        return TreeView((), distributions or {}, k, kind, study.direction)

    state = TreeState(
        SearchSpace(distributions), k, study.direction, int(config.get("max_retries", 1))
    )
    state.update(study._storage.get_all_trials(study._study_id, deepcopy=False))
    maximize = study.direction == StudyDirection.MAXIMIZE
    nodes = tuple(
        _node_view(state, node, maximize) for node in sorted(state.tree, key=lambda n: n.seq)
    )
    return TreeView(nodes, dict(state.space.distributions), k, kind, study.direction)
