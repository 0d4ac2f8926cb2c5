"""Storage coordination: decisions in trial-number order, published in trial system attributes.

The protocol (argued in ``docs/architecture.md``):

1. Every trial of a partition sampler publishes exactly one *decision record* under
   :data:`DECISION_KEY` in its own system attributes: the cell it evaluates (or none), the nodes
   it expanded and the sweep cursor after it. One key, so that a reader never sees half of it.
2. A trial decides only after every lower-numbered trial that is still RUNNING has published
   its decision. Trial numbers are unique per study on every Optuna storage, so the decisions
   form one sequence. Each decider reads all claims before it and never picks a claimed cell.
3. A lower-numbered trial that stays undecided (its worker died while sampling) is failed after
   ``decision_timeout`` seconds of being the oldest undecided trial, or earlier by Optuna's
   heartbeat. Failing it is the fence: a finished trial cannot be written to, so a worker that
   wakes up late cannot publish a decision that others did not wait for.
4. Any process rebuilds the tree by replaying the records in trial-number order; node values
   come from the claiming trials' states and values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import json
import math
import time
from typing import Any
import warnings

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import distribution_to_json
from optuna.distributions import json_to_distribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.study import Study
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_fractal._soo import SweepCursor


_logger = optuna.logging.get_logger(__name__)

# Trial system attribute holding a trial's decision record as JSON. A single key because
# attribute writes are last-writer-wins and a reader can observe a multi-key write half done.
DECISION_KEY = "fractal:decision"

# Study system attribute holding the search space the tree partitions, as JSON distributions.
# The first decider that has the space writes it once, and every later decider reads it.
SEARCH_SPACE_KEY = "fractal:search_space"

# Study system attribute holding the sampler settings the tree was built with (k, kind), so
# that a restarted sampler with other settings is rejected instead of corrupting the tree.
CONFIG_KEY = "fractal:config"

# Trial system attribute set by the sampler's ``after_trial`` when a trial ends without a value.
# Optuna calls ``after_trial`` only for trials that ran to their end, so a FAIL trial without it
# was interrupted (killed worker, heartbeat, fence), which is no evidence against its cell.
OBJECTIVE_FAILED_KEY = "fractal:objective_failed"

# Trial user attribute an objective sets (to True) when a trial failed for a reason that does not
# depend on its parameters (a missing file, a lost node). The cell is evaluated again and the
# attempt counts neither toward ``max_retries`` nor as an interruption.
ENVIRONMENT_FAILURE_ATTR = "fractal:environment_failure"

# Study user attribute counting nodes scored by the surrogate instead of evaluated (BaMSOO).
GP_SCORED_USER_ATTR = "fractal:gp_scored_nodes"

RECORD_VERSION = 1

# Roles of a decision record.
ROLE_CELL = "cell"  # The trial evaluates the centre of ``node``.
ROLE_SURPLUS = "surplus"  # Nothing to evaluate yet (the root's search space is unknown).
ROLE_EXHAUSTED = "exhausted"  # Every cell of a finite search space is evaluated.
ROLE_FOREIGN = "foreign"  # Enqueued with fixed parameters: kept out of the tree.
_ROLES = (ROLE_CELL, ROLE_SURPLUS, ROLE_EXHAUSTED, ROLE_FOREIGN)


class InvalidRecordError(ValueError):
    """A decision record that cannot be parsed or does not belong to its trial."""


@dataclass
class DecisionRecord:
    """Decision of one trial.

    Attributes:
        trial: Number of the trial that made the decision.
        role: One of ``cell``, ``surplus``, ``exhausted`` or ``foreign``.
        node: Id of the node the trial evaluates, for role ``cell``.
        expanded: Nodes the decision expanded, in order.
        scored: Surrogate scores the decision gave to new nodes (BaMSOO).
        cursor: Sweep cursor after the decision, ``None`` if the decision did not touch it.
        surrogate: Hyperparameters of the surrogate fitted for the decision (BaMSOO), the warm
            start of the next fit in whichever process makes it.
    """

    trial: int
    role: str
    node: str | None = None
    expanded: list[str] = field(default_factory=list)
    scored: dict[str, float] = field(default_factory=dict)
    cursor: SweepCursor | None = None
    surrogate: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": RECORD_VERSION,
                "trial": self.trial,
                "role": self.role,
                "node": self.node,
                "expanded": self.expanded,
                "scored": self.scored,
                "cursor": None if self.cursor is None else self.cursor.to_json(),
                "surrogate": self.surrogate,
            },
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, raw: Any, trial_number: int) -> DecisionRecord:
        """Parse a stored record and check that it belongs to ``trial_number``.

        Raises:
            InvalidRecordError: If the record is malformed, of another version, or was made by
                another trial (Optuna's retry callbacks copy system attributes to new trials).
        """
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(data, dict) or data.get("v") != RECORD_VERSION:
                raise InvalidRecordError(f"unknown record format: {str(raw)[:80]!r}")
            record = cls(
                trial=int(data["trial"]),
                role=str(data["role"]),
                node=None if data["node"] is None else str(data["node"]),
                expanded=[str(n) for n in data["expanded"]],
                scored={str(n): float(s) for n, s in data["scored"].items()},
                cursor=None if data["cursor"] is None else SweepCursor.from_json(data["cursor"]),
                surrogate=data.get("surrogate"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            if isinstance(error, InvalidRecordError):
                raise
            raise InvalidRecordError(f"malformed record {str(raw)[:80]!r}: {error}") from error
        if record.role not in _ROLES:
            raise InvalidRecordError(f"unknown role {record.role!r}")
        if record.role == ROLE_CELL and record.node is None:
            raise InvalidRecordError("a cell record without a node")
        if record.trial != trial_number:
            raise InvalidRecordError(
                f"record of trial {record.trial} found on trial {trial_number} (copied)"
            )
        return record


def read_record(trial: FrozenTrial, warned: set[int] | None = None) -> DecisionRecord | None:
    """Return the trial's own decision record, ``None`` if it has none or a bad one.

    A malformed record is logged once per trial (through ``warned``) and skipped, never raised.
    A record copied from another trial is silently ignored: that is how Optuna's retry
    callbacks work, not an error.
    """
    raw = trial.system_attrs.get(DECISION_KEY)
    if raw is None:
        return None
    try:
        return DecisionRecord.parse(raw, trial.number)
    except InvalidRecordError as error:
        if "(copied)" in str(error):
            return None
        if warned is None or trial.number not in warned:
            _logger.warning(
                f"Skipping the decision record of trial {trial.number}: {error}. The trial is "
                "kept out of the partition tree."
            )
            if warned is not None:
                warned.add(trial.number)
        return None


def copied_record(trial: FrozenTrial) -> DecisionRecord | None:
    """Return a record copied into ``trial`` from the trial it retries, if any."""
    raw = trial.system_attrs.get(DECISION_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
        return DecisionRecord.parse(data, int(data["trial"]))
    except (InvalidRecordError, KeyError, TypeError, ValueError):
        return None


def publish(study: Study, trial: FrozenTrial, record: DecisionRecord) -> None:
    """Write ``record`` into the trial's system attributes.

    Raises:
        UpdateFinishedTrialError: If the trial was failed meanwhile (fenced by another worker).
    """
    study._storage.set_trial_system_attr(trial._trial_id, DECISION_KEY, record.to_json())


# Search space and settings.


def load_search_space(study: Study) -> dict[str, BaseDistribution] | None:
    raw = study._storage.get_study_system_attrs(study._study_id).get(SEARCH_SPACE_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
        return {name: json_to_distribution(text) for name, text in data.items()}
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(
            f"The study attribute {SEARCH_SPACE_KEY!r} is not a valid search space ({error}). "
            "It was written by another program; restart the tuning in a new study."
        ) from error


def store_search_space(study: Study, distributions: dict[str, BaseDistribution]) -> None:
    data = {name: distribution_to_json(dist) for name, dist in sorted(distributions.items())}
    study._storage.set_study_system_attr(study._study_id, SEARCH_SPACE_KEY, json.dumps(data))


_SAMPLER_CLASSES = {"soo": "SOOSampler", "bamsoo": "BaMSOOSampler"}


def check_config(study: Study, config: dict[str, Any]) -> None:
    """Store the sampler settings on first use; reject a sampler with other settings later.

    Raises:
        ValueError: If the study's tree was built with other settings.
    """
    attrs = study._storage.get_study_system_attrs(study._study_id)
    stored = attrs.get(CONFIG_KEY)
    if stored is None:
        study._storage.set_study_system_attr(study._study_id, CONFIG_KEY, dict(config))
        return
    stored_kind, kind = stored.get("kind"), config.get("kind")
    if stored_kind is not None and stored_kind != kind:
        raise ValueError(
            f"Study {study.study_name!r} holds a partition tree built by "
            f"{_SAMPLER_CLASSES.get(stored_kind, stored_kind)}, but this sampler is "
            f"{_SAMPLER_CLASSES.get(kind, kind)}. Continue the study with "
            f"{_SAMPLER_CLASSES.get(stored_kind, stored_kind)}, or use a new study."
        )
    for name, value in config.items():
        if name in stored and stored[name] != value:
            raise ValueError(
                f"Study {study.study_name!r} holds a partition tree built with "
                f"{name}={stored[name]!r}, but this sampler has {name}={value!r}. Create the "
                f"sampler with {name}={stored[name]!r} to continue the study, or use a new study."
            )


# Trial values.


def trial_score(trial: FrozenTrial, direction: StudyDirection) -> float | None:
    """Value to maximise from a finished trial, ``None`` if the trial produced no value.

    A pruned trial scores with its last intermediate value, if it reported one.
    """
    if trial.state == TrialState.COMPLETE:
        value = trial.value
    elif trial.state == TrialState.PRUNED and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    else:
        return None
    if value is None or math.isnan(value):
        return None
    return value if direction == StudyDirection.MAXIMIZE else -value


# Waiting for lower-numbered trials.


def _is_heartbeat_enabled(study: Study) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)


def _fence(study: Study, trial: FrozenTrial, waited: float) -> None:
    try:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return
    _logger.warning(
        f"Failed trial {trial.number}: it published no sampling decision within "
        f"{waited:.0f} s while later trials waited for it (its worker probably died while "
        "sampling). Raise `decision_timeout` if sampling legitimately takes longer."
    )


def wait_for_turn(
    study: Study,
    trial_number: int,
    *,
    decision_timeout: float,
    poll_interval: float = 0.01,
    max_poll_interval: float = 0.25,
) -> None:
    """Block until every lower-numbered RUNNING trial has published a decision or finished.

    Args:
        study: The study.
        trial_number: Number of the trial about to decide.
        decision_timeout: Seconds the oldest undecided trial may stay undecided before it is
            failed as a dead worker's trial.
        poll_interval: First delay between storage polls, in seconds; it doubles up to
            ``max_poll_interval``.
        max_poll_interval: Maximum delay between polls, in seconds.
    """
    storage = study._storage
    blocker_number: int | None = None
    blocker_since = 0.0
    delay = poll_interval
    heartbeat = None
    while True:
        running = storage.get_all_trials(
            study._study_id, deepcopy=False, states=(TrialState.RUNNING,)
        )
        undecided = [
            t for t in running if t.number < trial_number and DECISION_KEY not in t.system_attrs
        ]
        # A record copied from another trial does not count as this trial's decision.
        undecided += [
            t
            for t in running
            if t.number < trial_number
            and DECISION_KEY in t.system_attrs
            and read_record(t) is None
            and copied_record(t) is not None
        ]
        if not undecided:
            return
        oldest = min(undecided, key=lambda t: t.number)
        now = time.monotonic()
        if oldest.number != blocker_number:
            blocker_number, blocker_since = oldest.number, now
        elif now - blocker_since > decision_timeout:
            _fence(study, oldest, now - blocker_since)
            continue
        if heartbeat is None:
            heartbeat = _is_heartbeat_enabled(study)
        if heartbeat:
            with warnings.catch_warnings():
                # Optuna marks fail_stale_trials experimental; this use is the documented one.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        time.sleep(delay)
        delay = min(delay * 2, max_poll_interval)


def records_of(
    trials: Sequence[FrozenTrial], warned: set[int] | None = None
) -> list[tuple[FrozenTrial, DecisionRecord]]:
    """Pair each trial that has its own valid record with it, in trial-number order."""
    pairs = []
    for trial in sorted(trials, key=lambda t: t.number):
        record = read_record(trial, warned)
        if record is not None:
            pairs.append((trial, record))
    return pairs
