"""Optuna glue shared by the partition samplers, and :class:`SOOSampler`."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import copy
import numbers
import threading
from typing import Any
from typing import TYPE_CHECKING

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.samplers import BaseSampler
from optuna.samplers import RandomSampler
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_fractal._coordination import check_config
from optuna_fractal._coordination import copied_record
from optuna_fractal._coordination import DecisionRecord
from optuna_fractal._coordination import load_search_space
from optuna_fractal._coordination import OBJECTIVE_FAILED_KEY
from optuna_fractal._coordination import publish
from optuna_fractal._coordination import read_record
from optuna_fractal._coordination import records_of
from optuna_fractal._coordination import ROLE_CELL
from optuna_fractal._coordination import ROLE_EXHAUSTED
from optuna_fractal._coordination import ROLE_FOREIGN
from optuna_fractal._coordination import ROLE_SURPLUS
from optuna_fractal._coordination import store_search_space
from optuna_fractal._coordination import wait_for_turn
from optuna_fractal._search_space import make_dimension
from optuna_fractal._search_space import SearchSpace
from optuna_fractal._soo import decide
from optuna_fractal._soo import Gate
from optuna_fractal._state import TreeState
from optuna_fractal._tree import OPEN
from optuna_fractal._tree import PartitionTree
from optuna_fractal._tree import ROOT_ID
from optuna_fractal._tree import RUNNING


if TYPE_CHECKING:
    from optuna.study import Study


_logger = optuna.logging.get_logger(__name__)

try:
    from optuna.samplers._base import _INDEPENDENT_SAMPLING_WARNING_TEMPLATE
except ImportError:  # pragma: no cover - the template moved in another Optuna release.
    _INDEPENDENT_SAMPLING_WARNING_TEMPLATE = (
        "The parameter '{param_name}' in trial#{trial_number} is sampled independently "
        "by using `{independent_sampler_name}` instead of `{sampler_name}` "
        "(optimization performance may be degraded). "
        "`{sampler_name}` does not support dynamic search space or `CategoricalDistribution`. "
        "You can suppress this warning by setting `warn_independent_sampling` "
        "to `False` in the constructor of `{sampler_name}`, "
        "if this independent sampling is intended behavior."
    )


def _root_value(distribution: BaseDistribution) -> Any:
    """Value at the centre of a distribution's whole range: the root cell's centre."""
    dim = make_dimension("_", distribution)
    tree = PartitionTree([dim], 2)
    (centre,) = tree.centre_unit(tree.root.cell)
    return (
        dim.value_at_unit(float(centre)) if dim.is_continuous else dim.value_at_index(int(centre))
    )


class _PartitionSampler(BaseSampler):
    """Shared machinery of :class:`SOOSampler` and :class:`BaMSOOSampler`."""

    _KIND = "soo"

    def __init__(
        self,
        *,
        k: int = 3,
        max_depth: int | None = None,
        h_max: Callable[[int], float] | None = None,
        search_space: dict[str, BaseDistribution] | None = None,
        max_retries: int = 1,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
        decision_timeout: float = 120.0,
        warn_independent_sampling: bool = True,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
            raise ValueError(
                f"k must be an integer >= 2 (the number of parts a cell is split into), got "
                f"{k!r}. Use k=3, the value of the SOO paper."
            )
        if max_depth is not None and (
            isinstance(max_depth, bool)
            or not isinstance(max_depth, numbers.Integral)
            or max_depth < 1
        ):
            raise ValueError(f"max_depth must be None or an integer >= 1, got {max_depth!r}.")
        if (
            isinstance(max_retries, bool)
            or not isinstance(max_retries, numbers.Integral)
            or max_retries < 0
        ):
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}.")
        if (
            isinstance(decision_timeout, bool)
            or not isinstance(decision_timeout, numbers.Real)
            or not decision_timeout > 0
        ):
            raise ValueError(
                f"decision_timeout must be a positive number of seconds, got {decision_timeout!r}."
            )
        self._space: SearchSpace | None = None
        if search_space is not None:
            if not isinstance(search_space, Mapping) or not all(
                isinstance(d, BaseDistribution) for d in search_space.values()
            ):
                raise ValueError(
                    f"search_space must map parameter names to Optuna distributions, got "
                    f"{search_space!r}. Pass e.g. {{'x': optuna.distributions."
                    "FloatDistribution(0.0, 1.0)}."
                )
            self._space = SearchSpace(search_space)
            if self._space.n_splittable() == 0:
                raise ValueError(
                    f"Every parameter of search_space={search_space!r} has a single value, so "
                    "there is nothing to search. Give at least one parameter a range with "
                    "low < high (or two choices)."
                )
        self._k = int(k)
        self._max_depth = None if max_depth is None else int(max_depth)
        self._h_max = h_max
        self._max_retries = int(max_retries)
        self._decision_timeout = float(decision_timeout)
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._warn_independent_sampling = warn_independent_sampling
        self._init_caches()

    def _init_caches(self) -> None:
        self._lock = threading.RLock()
        self._states: dict[tuple[int, int], TreeState] = {}
        self._records: dict[tuple[int, int], DecisionRecord] = {}
        self._spaces: dict[tuple[int, int], SearchSpace] = {}
        self._checked: set[tuple[int, int]] = set()
        self._exhausted_logged: set[tuple[int, int]] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_states", "_records", "_spaces", "_checked", "_exhausted_logged"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_caches()

    def reseed_rng(self) -> None:
        self._independent_sampler.reseed_rng()

    # Settings recorded in the study, checked when another process or a restart continues it.

    def _config(self) -> dict[str, Any]:
        return {"kind": self._KIND, "k": self._k, "max_retries": self._max_retries}

    def _gate(self, study: Study, state: TreeState) -> Gate | None:
        return None

    # Search space.

    @staticmethod
    def _study_key(study: Study) -> tuple[int, int]:
        return (id(study._storage), study._study_id)

    def _known_space(self, study: Study) -> SearchSpace | None:
        key = self._study_key(study)
        space = self._spaces.get(key)
        if space is not None:
            return space
        stored = load_search_space(study)
        if stored is not None:
            space = SearchSpace(stored)
            if self._space is not None and self._space != space:
                raise ValueError(
                    f"Study {study.study_name!r} partitions the search space {stored!r}, but "
                    f"this sampler was given {self._space.distributions!r}. Pass the stored "
                    "search space (or none) to continue the study, or use a new study."
                )
        elif self._space is not None:
            space = self._space
            # Stored so that get_tree and workers without the argument see the same space.
            store_search_space(study, space.distributions)
        if space is not None:
            self._spaces[key] = space
        return space

    def _infer_space(self, study: Study, trials: list[FrozenTrial]) -> SearchSpace | None:
        """Fix the search space from the first finished root trial and store it in the study."""
        for trial, record in records_of(trials):
            if record.role != ROLE_CELL or record.node != ROOT_ID:
                continue
            if trial.state.is_finished() and trial.distributions:
                space = SearchSpace(trial.distributions)
                store_search_space(study, space.distributions)
                self._spaces[self._study_key(study)] = space
                if space.n_splittable() == 0:
                    _logger.warning(
                        f"Every parameter of study {study.study_name!r} has a single value: "
                        "the partition tree has one cell and the search is over."
                    )
                return space
        return None

    def _tree_state(
        self, study: Study, space: SearchSpace, trials: list[FrozenTrial]
    ) -> TreeState:
        key = self._study_key(study)
        state = self._states.get(key)
        if state is None or state.space != space:
            state = TreeState(space, self._k, study.direction, self._max_retries)
            self._states[key] = state
        if not state.update(trials):
            _logger.info("A decision record arrived out of order; rebuilding the tree.")
            state = TreeState(space, self._k, study.direction, self._max_retries)
            state.update(trials)
            self._states[key] = state
        return state

    # Decisions.

    def _record_for(self, study: Study, trial: FrozenTrial) -> DecisionRecord:
        """Return the trial's decision, and make and publish it first if the trial has none."""
        key = (id(study._storage), trial._trial_id)
        with self._lock:
            record = self._records.get(key)
        if record is not None:
            return record
        fresh = study._storage.get_trial(trial._trial_id)
        record = read_record(fresh)
        if record is None:
            if fresh.state != TrialState.RUNNING:
                # Only a running trial can claim a cell; `sample_*` called on a finished trial.
                record = DecisionRecord(trial.number, ROLE_FOREIGN)
            else:
                self._check_study(study, fresh)
                # Heartbeats start before the wait, so that a worker killed while it waits or
                # decides is failed after the grace period, like one killed in its objective.
                # Optuna's own heartbeat thread starts only when `study.ask` returns. The first
                # heartbeat is written here because the thread may not run before a kill.
                if is_heartbeat_enabled(study._storage):
                    study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
                with get_heartbeat_thread(trial._trial_id, study._storage):
                    wait_for_turn(study, trial.number, decision_timeout=self._decision_timeout)
                    with self._lock:
                        record = self._decide_and_publish(study, fresh)
        with self._lock:
            self._records[key] = record
        return record

    def _check_study(self, study: Study, trial: FrozenTrial) -> None:
        """Reject a sampler whose settings or search space differ from the study's tree.

        The trial is failed before the error is raised: left RUNNING without a decision, it
        would hold up every later trial for ``decision_timeout`` seconds.

        Raises:
            ValueError: If the study's tree was built with other settings or another space.
        """
        study_key = self._study_key(study)
        if study_key in self._checked:
            return
        try:
            check_config(study, self._config())
            self._known_space(study)
        except ValueError:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            raise
        self._checked.add(study_key)

    def _decide_and_publish(self, study: Study, trial: FrozenTrial) -> DecisionRecord:
        study_key = self._study_key(study)
        try:
            record, state = self._decide(study, trial)
        except Exception:
            # The tree in memory may be half-changed; rebuild it from storage next time.
            self._states.pop(study_key, None)
            raise
        try:
            publish(study, trial, record)
        except UpdateFinishedTrialError:
            _logger.error(
                f"Trial {trial.number} was failed by another worker before it could publish "
                "its sampling decision (it waited longer than `decision_timeout`); its "
                "parameters are sampled independently and kept out of the tree."
            )
            self._states.pop(study_key, None)
            return DecisionRecord(trial.number, ROLE_FOREIGN)
        if state is not None:
            state.last_trial = trial.number
            state._applied.add(trial.number)
            state._parsed.add(trial.number)
            if record.role == ROLE_CELL and record.node is not None:
                state.claims.setdefault(record.node, []).append(trial.number)
                node = state.tree.nodes[record.node]
                node.status, node.trial_number = RUNNING, trial.number
            if record.cursor is not None:
                state.cursor = record.cursor
        return record

    def _decide(self, study: Study, trial: FrozenTrial) -> tuple[DecisionRecord, TreeState | None]:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        space = self._known_space(study)
        if space is None:
            space = self._infer_space(study, trials)

        if "fixed_params" in trial.system_attrs:
            # Enqueued by the user (kept out of the tree) or a retry of a failed cell by
            # Optuna's RetryFailedTrialCallback, which copies the failed trial's record.
            copied = copied_record(trial)
            if space is not None and copied is not None and copied.role == ROLE_CELL:
                state = self._tree_state(study, space, trials)
                node = state.tree.nodes.get(copied.node or "")
                if node is not None and node.status == OPEN:
                    return DecisionRecord(trial.number, ROLE_CELL, node=node.id), state
            return DecisionRecord(trial.number, ROLE_FOREIGN), None

        if space is None:
            # Before the first evaluation the objective's parameters are unknown: evaluate the
            # root (the centre of every range) once, and sample other trials independently.
            root_trials = [
                t for t, r in records_of(trials) if r.role == ROLE_CELL and r.node == ROOT_ID
            ]
            if any(t.state == TrialState.RUNNING for t in root_trials):
                return DecisionRecord(trial.number, ROLE_SURPLUS), None
            return DecisionRecord(trial.number, ROLE_CELL, node=ROOT_ID), None

        state = self._tree_state(study, space, trials)
        cursor = copy.copy(state.cursor)
        gate = self._gate(study, state)
        decision = decide(
            state.tree,
            cursor,
            max_depth=self._max_depth,
            h_max=self._h_max,
            n_evaluations=state.n_evaluations(),
            gate=gate,
        )
        if decision.node_id is None:
            study_key = self._study_key(study)
            if study_key not in self._exhausted_logged:
                _logger.warning(
                    f"Every cell of study {study.study_name!r} is split down to single values "
                    "and evaluated; further trials are sampled by the independent sampler. "
                    "Stop the study, or widen the search space."
                )
                self._exhausted_logged.add(study_key)
            role = ROLE_EXHAUSTED
        else:
            role = ROLE_CELL
        record = DecisionRecord(
            trial.number,
            role,
            node=decision.node_id,
            expanded=decision.expanded,
            scored=decision.scored,
            cursor=cursor,
            surrogate=getattr(gate, "surrogate_state", None),
        )
        if record.surrogate is not None:
            state.surrogate_state = record.surrogate
        return record, state

    # BaseSampler interface.

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if study._is_multi_objective():
            return
        self._record_for(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self._raise_error_if_multi_objective(study)
        space = self._known_space(study)
        if space is None:
            return {}
        return {name: d for name, d in space.distributions.items() if not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        if not search_space:
            return {}
        record = self._record_for(study, trial)
        space = self._known_space(study)
        if record.role != ROLE_CELL or record.node is None or space is None:
            # No cell for this trial: sample the whole relative space independently.
            return {
                name: self._independent_sampler.sample_independent(study, trial, name, dist)
                for name, dist in search_space.items()
            }
        with self._lock:
            state = self._states.get(self._study_key(study))
            if state is None or record.node not in state.tree.nodes:
                trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
                state = self._tree_state(study, space, trials)
            params = state.centre(state.tree.nodes[record.node])
        return {name: params[name] for name in search_space if name in params}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._raise_error_if_multi_objective(study)
        record = self._record_for(study, trial)
        if record.role == ROLE_CELL:
            space = self._known_space(study)
            if record.node == ROOT_ID and space is None:
                return _root_value(param_distribution)
            if self._warn_independent_sampling and space is not None:
                self._log_independent_sampling(trial, param_name)
        return self._independent_sampler.sample_independent(
            study, trial, param_name, param_distribution
        )

    def _log_independent_sampling(self, trial: FrozenTrial, param_name: str) -> None:
        _logger.warning(
            _INDEPENDENT_SAMPLING_WARNING_TEMPLATE.format(
                param_name=param_name,
                trial_number=trial.number,
                independent_sampler_name=self._independent_sampler.__class__.__name__,
                sampler_name=self.__class__.__name__,
                fallback_reason=(
                    "the parameter is outside the search space the partition tree was built on"
                ),
            )
        )

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: list[float] | None,
    ) -> None:
        self._independent_sampler.after_trial(study, trial, state, values)
        with self._lock:
            record = self._records.pop((id(study._storage), trial._trial_id), None)
        if record is not None and record.role == ROLE_CELL and state != TrialState.COMPLETE:
            try:
                study._storage.set_trial_system_attr(trial._trial_id, OBJECTIVE_FAILED_KEY, True)
            except UpdateFinishedTrialError:
                _logger.warning(
                    f"Trial {trial.number} was finished by another worker before its failure "
                    "could be recorded; its cell counts it as an interrupted attempt."
                )


class SOOSampler(_PartitionSampler):
    """Simultaneous Optimistic Optimization (SOO) on a partition tree kept in the study.

    SOO (Munos, 2011) partitions the search space into a tree of cells, evaluates each cell at
    its centre, and expands, at every depth, the best leaf that beats every shallower leaf
    expanded in the same sweep. It needs no knowledge of the objective's smoothness and is
    deterministic: the same objective gives the same sequence of points.

    The algorithm, as this sampler runs it, one evaluation per trial:

    1. Map every parameter to an axis of the unit cube (log parameters in log space, ints,
       stepped floats and categorical choices as lists of values). The root cell is the whole
       cube; the first trial evaluates its centre.
    2. A node is split into ``k`` children along its widest splittable axis. With odd ``k`` the
       middle child shares its parent's centre and inherits its value without a new trial.
       A discrete axis is never split below one value. A cell with one value on every axis
       stays a leaf and the sweep skips it, so it never stalls the search.
    3. Each trial first takes a child that still needs an evaluation. If none does, the sweep
       continues: at depth ``h`` (from 0 to the deepest depth, capped by ``h_max``), the best
       leaf is expanded if its value is at least the best value expanded so far in the sweep.
    4. A trial that fails leaves its cell open, and the next trial evaluates it again, up to
       ``max_retries`` times. A trial interrupted before its end (killed worker, stale
       heartbeat) does not count toward ``max_retries``, but a cell interrupted more than
       three times counts as failed. A trial whose user attribute
       ``optuna_fractal.ENVIRONMENT_FAILURE_ATTR`` is ``True`` (the objective reports a cause
       outside its parameters, such as a missing file) counts as neither. When every attempt
       has failed, the cell is marked ``failed`` and scores as the worst possible value: it
       stays in the tree (it can still be expanded when it is the only leaf of its depth) but
       it never wins against a cell with a value.
    5. Every decision is stored in the trial's system attributes and made in trial-number order,
       so several workers sharing one storage never evaluate a cell twice, and a new process
       (after a crash, or another worker) continues the same tree. While other workers still run
       cells, the sweep goes on around them: a running cell competes with its parent's value.

    Trials this sampler did not create (added with :meth:`~optuna.study.Study.add_trial`,
    enqueued with fixed parameters, or sampled by another sampler) are kept out of the tree.
    A pruned trial counts with its last intermediate value. Parameters outside the tree's search
    space (a define-by-run branch) are sampled by ``independent_sampler`` with a warning.

    Without ``search_space``, the tree's search space is the one the first trial suggests; a
    trial started while that first trial is still running cannot be placed in the tree and is
    sampled independently. Pass ``search_space`` to start many workers at once.

    References:
        R. Munos. Optimistic optimization of a deterministic function without the knowledge of
        its smoothness. NeurIPS 2011.

    Example:
        ```python
        import optuna
        from optuna_fractal import SOOSampler


        def objective(trial):
            x = trial.suggest_float("x", -5, 5)
            y = trial.suggest_int("y", 0, 10)
            return (x - 1.3) ** 2 + (y - 7) ** 2


        study = optuna.create_study(sampler=SOOSampler())
        study.optimize(objective, n_trials=50)
        print(study.best_params)
        ```

    Args:
        k: Number of children a split makes; an integer of at least 2. Defaults to 3, which lets
            the middle child reuse its parent's evaluation.
        max_depth: Nodes at this depth are never split. Defaults to ``None`` (no limit besides
            the float64 resolution of continuous axes).
        h_max: Depth limit of a sweep as a function of the number of evaluations ``n``, e.g.
            ``lambda n: n ** 0.5`` (Munos, 2011). Defaults to ``None`` (every depth).
        search_space: The parameters and their distributions. Defaults to ``None``: the space
            of the first trial.
        max_retries: How many times a failed cell is evaluated again. Defaults to 1.
        seed: Seed of the default independent sampler. SOO itself is deterministic. Defaults to
            ``None``.
        independent_sampler: Sampler for parameters outside the tree. Defaults to
            :class:`~optuna.samplers.RandomSampler` with ``seed``.
        decision_timeout: Seconds a trial may stay the oldest trial without a sampling decision
            before later trials fail it as a dead worker's trial. Deciding takes milliseconds
            for SOO and one GP fit for BaMSOO. Defaults to 120.
        warn_independent_sampling: Whether to log a warning when a parameter is sampled by
            ``independent_sampler``. Defaults to ``True``.

    Raises:
        ValueError: If ``k``, ``max_depth``, ``max_retries`` or ``decision_timeout`` is out of
            range, or ``search_space`` has no parameter with more than one value.
    """
