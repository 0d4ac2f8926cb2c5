"""Failing the running trials of dead workers on storages without a heartbeat."""

from __future__ import annotations

import datetime

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState


_logger = optuna.logging.get_logger(__name__)


def stale_trials(
    study: Study, older_than: float, now: datetime.datetime | None = None
) -> list[FrozenTrial]:
    """Return the RUNNING trials of ``study`` that started more than ``older_than`` seconds ago.

    Optuna stores ``datetime_start`` as the worker's local time without a time zone, so the
    worker's clock and this process's clock must agree (same time zone, synchronised).
    """
    if now is None:
        now = datetime.datetime.now()
    threshold = datetime.timedelta(seconds=older_than)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [
        trial
        for trial in running
        if trial.datetime_start is not None and now - trial.datetime_start > threshold
    ]


def fail_stale_trials(study: Study, older_than: float) -> list[int]:
    """Fail the RUNNING trials that started more than ``older_than`` seconds ago.

    This does for any storage (a journal file, Redis, SQLite without heartbeat) what Optuna's
    heartbeat does for an RDB storage: a trial whose worker died stays RUNNING forever, which
    keeps its cell claimed. Failing it reopens the cell, and the next trial evaluates it again.

    It is safe only if no live trial runs longer than ``older_than``. A live trial that is
    failed keeps running to the end, but its result is rejected when its worker reports it.
    The evaluation is then wasted, and its cell is evaluated a second time.

    Example:

        .. code-block:: python

            import optuna
            from optuna_fractal._stale import fail_stale_trials

            study = optuna.load_study(study_name="hpo", storage="sqlite:///hpo.db")
            failed = fail_stale_trials(study, older_than=3 * 3600)
            print(f"failed trials {failed}")

    Args:
        study: The study.
        older_than: Age in seconds, measured from each trial's ``datetime_start``. Must be
            positive.

    Returns:
        Numbers of the trials this call failed, in increasing order. A trial that finished or
        was failed by another process meanwhile is skipped.

    Raises:
        ValueError: If ``older_than`` is not positive.
    """
    if not older_than > 0:
        raise ValueError(
            f"older_than must be a positive number of seconds, got {older_than!r}. Use the "
            "longest time a live trial can take, with a margin."
        )
    failed = []
    for trial in stale_trials(study, older_than):
        try:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        _logger.warning(
            f"Failed trial {trial.number} of study {study.study_name!r}: RUNNING since "
            f"{trial.datetime_start:%Y-%m-%d %H:%M:%S}, longer than {older_than:g} s."
        )
        failed.append(trial.number)
    return sorted(failed)
