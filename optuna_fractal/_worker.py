"""The loop of one worker process: run trials until the study-wide budget is met.

Several workers share one study, and the budget counts the trials of the whole study. A worker
starts a trial only while the COMPLETE and PRUNED trials plus the RUNNING ones are fewer than
the budget. The workers therefore stop together at the budget. A FAIL trial does not count,
because a later trial evaluates its cell again, and the budget stays a number of results.
``max_failed_trials`` bounds how many failures the study may collect, so that an objective
that always raises cannot loop forever.

While running trials cover the rest of the budget, an idle worker waits instead of exiting:
if one of those trials fails (its worker was killed), the idle worker runs the replacement.

A stop request (SIGTERM from a scheduler) interrupts the objective at once, so that its trial
is marked FAIL and its cell re-run. A request that arrives while the worker is inside
``study.ask()`` takes effect once the trial has its sampling decision: a partition sampler
orders decisions by trial number, and a trial left without one would hold up every later
trial until the sampler's ``decision_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import datetime
import enum
import time
from typing import Any
import warnings

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import fail_stale_trials
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import Trial
from optuna.trial import TrialState

from optuna_fractal._coordination import read_record
from optuna_fractal._coordination import ROLE_EXHAUSTED


_logger = optuna.logging.get_logger(__name__)

# States of the trials that count towards the budget.
COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


class StopReason(enum.Enum):
    """Reason a worker stopped."""

    BUDGET = "budget"  # The study has n_trials COMPLETE or PRUNED trials.
    EXHAUSTED = "exhausted"  # The partition sampler has no cell left to evaluate.
    TIMEOUT = "timeout"  # The worker's time limit passed.
    FAILURES = "failures"  # The study has max_failed_trials FAIL trials.
    TERMINATED = "terminated"  # A stop was requested (SIGTERM) while no trial ran.


class WorkerTerminated(KeyboardInterrupt):
    """Raised in the worker's thread by :meth:`Worker.request_stop` during a trial.

    A ``KeyboardInterrupt`` subclass, because Optuna marks the running trial FAIL on one and
    re-raises it, instead of catching it like an objective's error.
    """


@dataclass
class StudyCounts:
    """Trials of a study, counted by state."""

    counted: int
    running: int
    failed: int

    @classmethod
    def of(cls, study: Study) -> StudyCounts:
        trials = study.get_trials(deepcopy=False)
        return cls(
            counted=sum(1 for t in trials if t.state in COUNTED_STATES),
            running=sum(1 for t in trials if t.state == TrialState.RUNNING),
            failed=sum(1 for t in trials if t.state == TrialState.FAIL),
        )


@dataclass
class WorkerResult:
    """Outcome of one worker's run.

    Attributes:
        reason: Why the worker stopped.
        n_run: Trials this worker ran to the end (any final state).
        n_lost: Trials of this worker that another process failed while they ran.
    """

    reason: StopReason
    n_run: int
    n_lost: int


class _ProgressBar:
    """A tqdm bar on the study-wide count of COMPLETE and PRUNED trials."""

    def __init__(self, enabled: bool, total: int, initial: int, description: str) -> None:
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=description, unit="trial")

    def update(self, counts: StudyCounts, best: float | None) -> None:
        if self._bar is None:
            return
        self._bar.n = min(counts.counted, self._bar.total)
        postfix: dict[str, Any] = {"running": counts.running, "failed": counts.failed}
        if best is not None:
            postfix["best"] = f"{best:.6g}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _best_value(study: Study) -> float | None:
    try:
        return study.best_value
    except ValueError:
        return None


def _is_exhausted(trial: FrozenTrial) -> bool:
    record = read_record(trial)
    return record is not None and record.role == ROLE_EXHAUSTED


class Worker:
    """Runs trials of one study in this process until the study-wide budget is met.

    Args:
        study: The study, with its sampler.
        objective: The objective function.
        n_trials: Budget: COMPLETE and PRUNED trials of the whole study, across workers.
        max_failed_trials: The worker stops once the study has this many FAIL trials.
            Defaults to ``None`` (``n_trials``).
        timeout: Seconds after which the worker starts no new trial. Defaults to ``None`` (no
            limit). A running trial is never interrupted.
        progress_bar: Whether to show a tqdm bar on standard error. Defaults to ``True``.
        poll_interval: Seconds between two looks at the study while waiting. Defaults to 0.5.
        callbacks: Further callbacks of :meth:`~optuna.study.Study.optimize`, called after
            each trial this worker ran. Defaults to ``None``.
    """

    def __init__(
        self,
        study: Study,
        objective: Callable[[Trial], Any],
        n_trials: int,
        *,
        max_failed_trials: int | None = None,
        timeout: float | None = None,
        progress_bar: bool = True,
        poll_interval: float = 0.5,
        callbacks: list[Callable[[Study, FrozenTrial], None]] | None = None,
    ) -> None:
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}.")
        if max_failed_trials is None:
            max_failed_trials = n_trials
        if max_failed_trials < 1:
            raise ValueError(
                f"max_failed_trials must be a positive integer, got {max_failed_trials!r}."
            )
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        self._study = study
        self._objective = objective
        self._n_trials = n_trials
        self._max_failed = max_failed_trials
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._show_progress = progress_bar
        self._poll_interval = poll_interval
        self._callbacks = list(callbacks or [])
        self._stop_requested = False
        self._in_objective = False

    def request_stop(self) -> None:
        """Stop the worker: at once inside the objective, else after the sampling decision.

        Meant for a signal handler, which runs in the worker's thread. A second request
        raises :class:`WorkerTerminated` wherever the worker is.

        Raises:
            WorkerTerminated: If the worker is in the objective or a stop was requested before.
        """
        if self._in_objective or self._stop_requested:
            self._stop_requested = True
            raise WorkerTerminated()
        self._stop_requested = True

    def _next_step(self) -> StopReason | None:
        """Wait until this worker may start a trial; return why it must stop instead."""
        study = self._study
        waiting_logged = False
        while True:
            if self._stop_requested:
                return StopReason.TERMINATED
            counts = StudyCounts.of(study)
            if counts.counted >= self._n_trials:
                return StopReason.BUDGET
            if counts.failed >= self._max_failed:
                return StopReason.FAILURES
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return StopReason.TIMEOUT
            if counts.counted + counts.running < self._n_trials:
                return None
            if not waiting_logged:
                _logger.info(
                    f"{counts.running} running trials cover the rest of the budget of "
                    f"{self._n_trials}; waiting in case one of them fails."
                )
                waiting_logged = True
            # On an RDB storage with heartbeat, this fails the trials of dead workers.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                fail_stale_trials(study)
            time.sleep(self._poll_interval)

    def _run_one_trial(self) -> tuple[FrozenTrial | None, bool]:
        """Run one trial; return it and whether another process failed it while it ran."""
        started: list[Trial] = []
        finished: list[FrozenTrial] = []

        def objective(trial: Trial) -> Any:
            started.append(trial)
            if self._stop_requested:
                raise WorkerTerminated()
            self._in_objective = True
            try:
                return self._objective(trial)
            finally:
                self._in_objective = False

        def remember(study: Study, trial: FrozenTrial) -> None:
            finished.append(trial)

        try:
            self._study.optimize(
                objective, n_trials=1, catch=(Exception,), callbacks=[remember, *self._callbacks]
            )
        except (ValueError, UpdateFinishedTrialError):
            # Optuna raises when it reports a result to a trial that is already finished.
            if not started:
                raise
            trial = self._study._storage.get_trial(started[0]._trial_id)
            if trial.state != TrialState.FAIL:
                raise
            _logger.warning(
                f"Trial {trial.number} was failed by another process while it ran (heartbeat "
                "grace period, fail-stale threshold or decision timeout too short?); its "
                "result is discarded and its cell is evaluated again."
            )
            return trial, True
        return (finished[0] if finished else None), False

    def run(self) -> WorkerResult:
        """Run trials until the budget is met, the time is up or the sampler is exhausted."""
        study = self._study
        counts = StudyCounts.of(study)
        bar = _ProgressBar(self._show_progress, self._n_trials, counts.counted, study.study_name)
        n_run = 0
        n_lost = 0
        try:
            while True:
                reason = self._next_step()
                if reason is not None:
                    break
                trial, lost = self._run_one_trial()
                n_run += 1
                n_lost += int(lost)
                bar.update(StudyCounts.of(study), _best_value(study))
                if trial is not None and _is_exhausted(trial):
                    _logger.info(
                        f"The sampler has evaluated every cell of study {study.study_name!r}; "
                        "this worker stops."
                    )
                    reason = StopReason.EXHAUSTED
                    break
        finally:
            bar.close()
        return WorkerResult(reason, n_run, n_lost)


def describe_stop(result: WorkerResult, n_trials: int, max_failed: int) -> str:
    """Return a one-line summary of why and after how many trials a worker stopped."""
    texts = {
        StopReason.BUDGET: f"the study has {n_trials} COMPLETE or PRUNED trials",
        StopReason.EXHAUSTED: "the sampler has no cell left to evaluate",
        StopReason.TIMEOUT: "the time limit passed",
        StopReason.TERMINATED: "a stop was requested (SIGTERM or SIGINT)",
        StopReason.FAILURES: (
            f"the study has {max_failed} FAIL trials (raise --max-failed-trials after fixing "
            "the cause in the objective's log)"
        ),
    }
    return (
        f"Worker stops at {datetime.datetime.now():%H:%M:%S}: {texts[result.reason]}. It ran "
        f"{result.n_run} trials ({result.n_lost} of them failed by another process)."
    )
