"""Rebuilding a study's partition tree from its trials' decision records.

:class:`TreeState` replays the records in trial-number order and keeps the result, so that a
process pays for each record once: later calls apply only records of new trials and refresh
the nodes whose trials have not finished.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_fractal._coordination import DecisionRecord
from optuna_fractal._coordination import ENVIRONMENT_FAILURE_ATTR
from optuna_fractal._coordination import OBJECTIVE_FAILED_KEY
from optuna_fractal._coordination import read_record
from optuna_fractal._coordination import ROLE_CELL
from optuna_fractal._coordination import trial_score
from optuna_fractal._search_space import SearchSpace
from optuna_fractal._soo import resolve_inherited
from optuna_fractal._soo import SweepCursor
from optuna_fractal._tree import COMPLETE
from optuna_fractal._tree import EVALUATED
from optuna_fractal._tree import FAILED
from optuna_fractal._tree import Node
from optuna_fractal._tree import OPEN
from optuna_fractal._tree import PartitionTree
from optuna_fractal._tree import ROOT_ID
from optuna_fractal._tree import RUNNING
from optuna_fractal._tree import SURROGATE


_logger = optuna.logging.get_logger(__name__)

# Interrupted attempts (the worker was killed, or its heartbeat stopped) a cell may have before
# it is marked failed. They are not the objective's fault, so they do not count toward
# ``max_retries``. This limit only stops a cell whose parameters crash the worker process itself
# (for example an out-of-memory kill) from being retried forever.
MAX_INTERRUPTIONS = 3

# Relative tolerance when checking that a trial evaluated its node's centre. Values go through
# the storage as float64, which keeps them exact; the tolerance only absorbs step rounding.
_PARAM_RTOL = 1e-9


def centre_params(space: SearchSpace, tree: PartitionTree, node: Node) -> dict[str, Any]:
    """Parameter values at the centre of a node's cell."""
    params = {}
    for dim, centre in zip(space.dimensions, tree.centre_unit(node.cell)):
        if dim.is_continuous:
            params[dim.name] = dim.value_at_unit(float(centre))
        else:
            params[dim.name] = dim.value_at_index(int(centre))
    return params


def _same_value(dim_dist: Any, a: Any, b: Any) -> bool:
    internal_a = dim_dist.to_internal_repr(a)
    internal_b = dim_dist.to_internal_repr(b)
    return math.isclose(internal_a, internal_b, rel_tol=_PARAM_RTOL, abs_tol=1e-12)


class TreeState:
    """The partition tree of one study, rebuilt from storage and kept up to date.

    Args:
        space: The search space the tree partitions.
        k: Parts per split.
        direction: The study's direction.
        max_retries: How many times a cell whose trial failed is evaluated again.
    """

    def __init__(
        self, space: SearchSpace, k: int, direction: StudyDirection, max_retries: int
    ) -> None:
        self.space = space
        self.k = k
        self.direction = direction
        self.max_retries = max_retries
        self.tree = PartitionTree(space.dimensions, k)
        self.cursor = SweepCursor()
        self.surrogate_state: dict[str, Any] | None = None
        self.last_trial = -1
        # Node id -> numbers of the trials that claimed it, in order.
        self.claims: dict[str, list[int]] = {}
        self._centres: dict[str, dict[str, Any]] = {}
        self._settled: dict[int, tuple[TrialState, float | None, bool]] = {}
        self._warned: set[int] = set()
        self._applied: set[int] = set()
        # Node id -> number of claims when its status was last final.
        self._final: dict[str, int] = {}
        # Trials whose record is parsed, or that finished without one.
        self._parsed: set[int] = set()

    def centre(self, node: Node) -> dict[str, Any]:
        params = self._centres.get(node.id)
        if params is None:
            params = centre_params(self.space, self.tree, node)
            self._centres[node.id] = params
        return params

    def apply(self, record: DecisionRecord) -> None:
        """Apply one decision record; records must come in trial-number order.

        Raises:
            ValueError: If the record names nodes that this tree cannot have.
        """
        for node_id in record.expanded:
            children = self.tree.expand(node_id)
            resolve_inherited(self.tree, children)
        for node_id, score in record.scored.items():
            node = self.tree.nodes[node_id]
            node.status, node.score, node.source = COMPLETE, score, SURROGATE
        if record.scored:
            resolve_inherited(self.tree)
        if record.role == ROLE_CELL:
            assert record.node is not None
            if record.node not in self.tree.nodes:
                raise ValueError(f"unknown node {record.node!r}")
            self.claims.setdefault(record.node, []).append(record.trial)
        if record.cursor is not None:
            self.cursor = record.cursor
        if record.surrogate is not None:
            self.surrogate_state = record.surrogate
        self.last_trial = record.trial

    def update(self, trials: Sequence[FrozenTrial]) -> bool:
        """Apply new records and refresh node statuses from ``trials`` (all trials of the study).

        Returns:
            ``False`` if a record older than the last applied one appeared; the caller must then
            rebuild the state from scratch.
        """
        by_number = {t.number: t for t in trials}
        new_records = []
        for trial in trials:
            if trial.number in self._parsed:
                continue
            record = read_record(trial, self._warned)
            if record is not None:
                new_records.append(record)
                self._parsed.add(trial.number)
            elif trial.state.is_finished():
                # A finished trial can no longer publish a record.
                self._parsed.add(trial.number)
        in_order = True
        for record in sorted(new_records, key=lambda r: r.trial):
            if record.trial < self.last_trial:
                in_order = False
                continue
            try:
                self.apply(record)
            except (KeyError, ValueError) as error:
                _logger.warning(
                    f"Skipping the decision record of trial {record.trial}: {error}. The "
                    "trial is kept out of the partition tree."
                )
                self._warned.add(record.trial)
            self._applied.add(record.trial)
        self.refresh(by_number)
        return in_order

    def refresh(self, by_number: dict[int, FrozenTrial]) -> None:
        """Recompute the status of every claimed node from its trials."""
        for node_id, claim_numbers in self.claims.items():
            if self._final.get(node_id) == len(claim_numbers):
                continue
            node = self.tree.nodes[node_id]
            if node.source == SURROGATE:
                continue
            self._refresh_node(node, claim_numbers, by_number)
            if all(number in self._settled for number in claim_numbers):
                # Every claim has finished: the status cannot change until a new claim.
                self._final[node_id] = len(claim_numbers)
        resolve_inherited(self.tree)

    def _claim_outcome(
        self, node: Node, trial: FrozenTrial
    ) -> tuple[TrialState, float | None, bool]:
        cached = self._settled.get(trial.number)
        if cached is not None:
            return cached
        score = trial_score(trial, self.direction)
        valid = True
        if score is not None:
            centre = self.centre(node)
            for name, value in trial.params.items():
                if name in centre and not _same_value(
                    trial.distributions[name], value, centre[name]
                ):
                    valid = False
                    if trial.number not in self._warned:
                        _logger.warning(
                            f"Trial {trial.number} evaluated {name}={value!r}, not the centre "
                            f"{centre[name]!r} of its cell {node.id}; its value is kept out of "
                            "the tree and the cell counts as failed. This happens when the "
                            "parameter's range changed or another sampler fixed the value."
                        )
                        self._warned.add(trial.number)
                    break
        outcome = (trial.state, score, valid)
        if trial.state.is_finished():
            self._settled[trial.number] = outcome
        return outcome

    def _refresh_node(
        self, node: Node, claim_numbers: list[int], by_number: dict[int, FrozenTrial]
    ) -> None:
        failures = 0
        interruptions = 0
        status = OPEN
        for number in claim_numbers:
            trial = by_number.get(number)
            if trial is None:
                failures += 1
                continue
            state, score, valid = self._claim_outcome(node, trial)
            node.trial_number = number
            if state == TrialState.RUNNING or state == TrialState.WAITING:
                status = RUNNING
                continue
            if score is not None and valid:
                node.status, node.score, node.source = COMPLETE, score, EVALUATED
                node.failures = failures
                return
            status = OPEN
            if trial.user_attrs.get(ENVIRONMENT_FAILURE_ATTR) is True:
                continue
            interrupted = (
                state == TrialState.FAIL
                and valid
                and OBJECTIVE_FAILED_KEY not in trial.system_attrs
            )
            if interrupted:
                interruptions += 1
            else:
                failures += 1
        node.failures = failures
        node.score = None
        node.source = None
        if status == RUNNING:
            node.status = RUNNING
        elif failures > self.max_retries or interruptions > MAX_INTERRUPTIONS:
            node.status = FAILED
        else:
            node.status = OPEN

    def unit_point(self, node: Node) -> list[float]:
        """Centre of a node in the unit cube (a discrete value at its bin position)."""
        point = []
        for dim, centre in zip(self.space.dimensions, self.tree.centre_unit(node.cell)):
            if dim.positions is None:
                point.append(float(centre))
            else:
                point.append(dim.positions[int(centre)])
        return point

    def n_surrogate_scored(self) -> int:
        return sum(1 for node in self.tree if node.source == SURROGATE and not node.inherits)

    def n_evaluations(self) -> int:
        return sum(1 for node in self.tree if node.source == EVALUATED)

    def best_evaluated_score(self) -> float:
        scores = [n.score for n in self.tree if n.source == EVALUATED and n.score is not None]
        return max(scores, default=-math.inf)

    def root_claims(self) -> list[int]:
        return self.claims.get(ROOT_ID, [])
