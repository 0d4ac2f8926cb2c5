"""BaMSOO: SOO that lets a Gaussian process vouch for hopeless cells instead of evaluating them."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import math
import numbers
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_fractal._bamsoo_math import beta_n
from optuna_fractal._coordination import GP_SCORED_USER_ATTR
from optuna_fractal._sampler import _PartitionSampler
from optuna_fractal._state import TreeState
from optuna_fractal._surrogate import Surrogate
from optuna_fractal._surrogate import SurrogateFitError
from optuna_fractal._tree import EVALUATED
from optuna_fractal._tree import Node
from optuna_fractal._tree import PartitionTree
from optuna_fractal._tree import SURROGATE


if TYPE_CHECKING:
    from optuna.study import Study


_logger = optuna.logging.get_logger(__name__)


class _UCBGate:
    """BaMSOO's test for the children of one decision, with one surrogate fit at most.

    A child is evaluated for real if ``mu + B_N * sigma >= f+``; otherwise it gets
    ``mu - B_N * sigma`` as its score. Scores are maximised. The fit happens on the first call,
    so a decision that expands nothing fits nothing.
    """

    def __init__(
        self,
        state: TreeState,
        surrogate: Surrogate,
        eta: float,
        study_name: str,
        warned: set[str],
    ) -> None:
        self._state = state
        self._surrogate = surrogate
        self._eta = eta
        self._study_name = study_name
        self._warned = warned
        self._fitted: bool | None = None
        self._best = -math.inf
        self._n_valued = 0
        self.surrogate_state: dict[str, Any] | None = None

    def _fit(self) -> bool:
        evaluated = [
            node
            for node in self._state.tree
            if node.source == EVALUATED and node.score is not None and not node.inherits
        ]
        finite = [node for node in evaluated if math.isfinite(node.score)]  # type: ignore[arg-type]
        if len(finite) < len(evaluated) and "non-finite" not in self._warned:
            _logger.warning(
                f"Study {self._study_name!r} has infinite objective values; they are left out "
                "of the Gaussian process, which is fitted on the finite values only."
            )
            self._warned.add("non-finite")
        if len(finite) < 2:
            return False
        x = np.array([self._state.unit_point(node) for node in finite])
        y = np.array([node.score for node in finite], dtype=float)
        load = getattr(self._surrogate, "load_state", None)
        if load is not None and self._state.surrogate_state is not None:
            load(self._state.surrogate_state)
        try:
            self._surrogate.fit(x, y)
        except SurrogateFitError as error:
            _logger.warning(
                f"The Gaussian process of study {self._study_name!r} could not be fitted "
                f"({error}); this decision evaluates every new cell for real."
            )
            return False
        export = getattr(self._surrogate, "export_state", None)
        if export is not None:
            self.surrogate_state = export()
        self._best = float(np.max(y))
        # N counts every node given a value so far, evaluated or GP-scored (see the docstring
        # of BaMSOOSampler); each child tested below adds one.
        self._n_valued = sum(
            1
            for node in self._state.tree
            if node.source in (EVALUATED, SURROGATE) and not node.inherits
        )
        return True

    def __call__(self, tree: PartitionTree, children: Sequence[Node]) -> dict[str, float]:
        if self._fitted is None:
            self._fitted = self._fit()
        if not self._fitted or not children:
            return {}
        x = np.array([self._state.unit_point(child) for child in children])
        try:
            mean, std = self._surrogate.predict(x)
        except SurrogateFitError as error:
            _logger.warning(
                f"The Gaussian process of study {self._study_name!r} failed to predict "
                f"({error}); new cells are evaluated for real."
            )
            self._fitted = False
            return {}
        scores = {}
        for child, mu, sigma in zip(children, mean, std):
            self._n_valued += 1
            beta = beta_n(self._n_valued, self._eta)
            if float(mu + beta * sigma) < self._best:
                scores[child.id] = float(mu - beta * sigma)
        return scores


def _default_surrogate(seed: int | None) -> Surrogate:
    from optuna_fractal._surrogate import BoTorchGP

    return BoTorchGP(seed=seed)


class BaMSOOSampler(_PartitionSampler):
    """Bayesian Multi-Scale Optimistic Optimization (BaMSOO) on a partition tree in the study.

    BaMSOO (Wang, Shakibi, Jin and de Freitas, 2014) is :class:`~optuna_fractal.SOOSampler` with
    a Gaussian process that skips hopeless evaluations. Each new cell is evaluated for real only
    if its upper confidence bound could reach the best value found so far; otherwise its lower
    confidence bound is used as its value, at no cost. For an expensive objective such as an
    LLM fine-tune, every skipped cell saves a whole training run.

    The algorithm, one evaluation per trial (scores to maximise; a minimisation study negates
    the objective):

    1. Run the SOO sweep of :class:`~optuna_fractal.SOOSampler` (steps 1 to 5 there).
    2. When a decision expands nodes, fit the Gaussian process once, on every cell evaluated
       for real so far (never on GP-scored cells), starting from the hyperparameters stored by
       the previous fit.
    3. For each new child ``x`` that does not share its parent's centre, compute
       ``UCB(x) = mu(x) + B_N sigma(x)`` and ``LCB(x) = mu(x) - B_N sigma(x)`` with
       ``B_N = sqrt(2 log(pi^2 N^2 / (6 eta)))``. If ``UCB(x) >= f+`` (the best real value),
       the child is evaluated by a trial; otherwise it gets the score ``LCB(x)``, is stored as
       GP-scored and competes in the sweep like any other node.
    4. The middle child of a GP-scored node shares its centre and takes its GP score, never a
       real value.
    5. With fewer than two real evaluations, or when the fit fails (all-equal values, singular
       data, infinite values only), the decision evaluates every new cell for real and logs a
       warning.

    ``N`` counts the nodes that have a value, evaluated or GP-scored, and grows by one with
    every new child tested, as in the public implementations of BaMSOO (for example the one in
    the zellij library). The middle children that take their parent's value are not counted.

    NOTE: this reading of ``N`` follows those implementations; it was not checked against the
    text of the paper's algorithm.

    The number of GP-scored cells (the evaluations saved) is stored in the study user attribute
    ``"fractal:gp_scored_nodes"`` after each trial and logged when it grows. The fitted
    hyperparameters are stored with each decision, so a restarted or second process makes the
    same next decision as the process that stopped. One decision expands at most 100 nodes
    whose children are all GP-scored; past that, the next new cell is evaluated for real.

    References:
        Z. Wang, B. Shakibi, L. Jin and N. de Freitas. Bayesian Multi-Scale Optimistic
        Optimization. AISTATS 2014.

        R. Munos. Optimistic optimization of a deterministic function without the knowledge of
        its smoothness. NeurIPS 2011.

    Example:
        ```python
        import optuna
        from optuna_fractal import BaMSOOSampler


        def objective(trial):
            x = trial.suggest_float("x", -5, 5)
            y = trial.suggest_float("y", -5, 5)
            return (x - 1.3) ** 2 + (y + 0.4) ** 2


        study = optuna.create_study(sampler=BaMSOOSampler(seed=0))
        study.optimize(objective, n_trials=30)
        print(study.best_params, study.user_attrs["fractal:gp_scored_nodes"])
        ```

    Args:
        k: Number of children a split makes, at least 2. Defaults to 3.
        eta: Confidence parameter of the bounds, in ``(0, 1]``; smaller values widen the bounds
            and skip fewer cells. Defaults to 0.5.
        seed: Seed of the Gaussian-process fit and of the default independent sampler.
            Defaults to ``None``.
        surrogate: Factory returning the surrogate model, called with ``seed``; any object with
            ``fit(x, y)`` and ``predict(x) -> (mean, std)`` on the unit cube works. Defaults to
            ``None``: BoTorch's ``SingleTaskGP`` (needs the ``bo`` extra).
        max_depth: See :class:`~optuna_fractal.SOOSampler`. Defaults to ``None``.
        h_max: See :class:`~optuna_fractal.SOOSampler`. Defaults to ``None``.
        search_space: See :class:`~optuna_fractal.SOOSampler`. Defaults to ``None``.
        max_retries: See :class:`~optuna_fractal.SOOSampler`. Defaults to 1.
        independent_sampler: See :class:`~optuna_fractal.SOOSampler`. Defaults to ``None``.
        decision_timeout: See :class:`~optuna_fractal.SOOSampler`. Defaults to 120.
        warn_independent_sampling: See :class:`~optuna_fractal.SOOSampler`. Defaults to
            ``True``.

    Raises:
        ValueError: If ``eta`` is not in ``(0, 1]``, or another argument is out of range (see
            :class:`~optuna_fractal.SOOSampler`).
    """

    _KIND = "bamsoo"

    def __init__(
        self,
        *,
        k: int = 3,
        eta: float = 0.5,
        seed: int | None = None,
        surrogate: Callable[[int | None], Surrogate] | None = None,
        max_depth: int | None = None,
        h_max: Callable[[int], float] | None = None,
        search_space: dict[str, BaseDistribution] | None = None,
        max_retries: int = 1,
        independent_sampler: BaseSampler | None = None,
        decision_timeout: float = 120.0,
        warn_independent_sampling: bool = True,
    ) -> None:
        if (
            isinstance(eta, bool)
            or not isinstance(eta, numbers.Real)
            or not 0.0 < float(eta) <= 1.0
        ):
            raise ValueError(
                f"eta must be a number in (0, 1], got {eta!r}. Use a confidence parameter such "
                "as 0.5 (the default) or 0.05 for wider bounds."
            )
        super().__init__(
            k=k,
            max_depth=max_depth,
            h_max=h_max,
            search_space=search_space,
            max_retries=max_retries,
            seed=seed,
            independent_sampler=independent_sampler,
            decision_timeout=decision_timeout,
            warn_independent_sampling=warn_independent_sampling,
        )
        self._eta = float(eta)
        self._seed = seed
        self._surrogate_factory = surrogate or _default_surrogate
        self._surrogates: dict[tuple[int, int], Surrogate] = {}
        self._warned: set[str] = set()
        self._reported: dict[tuple[int, int], int] = {}

    def _init_caches(self) -> None:
        super()._init_caches()
        self._surrogates = {}
        self._reported = {}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_surrogates", None)
        state.pop("_reported", None)
        return state

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "eta": self._eta}

    def _gate(self, study: Study, state: TreeState) -> _UCBGate:
        key = self._study_key(study)
        surrogate = self._surrogates.get(key)
        if surrogate is None:
            surrogate = self._surrogate_factory(self._seed)
            self._surrogates[key] = surrogate
        return _UCBGate(state, surrogate, self._eta, study.study_name, self._warned)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: list[float] | None,
    ) -> None:
        super().after_trial(study, trial, state, values)
        key = self._study_key(study)
        with self._lock:
            tree_state = self._states.get(key)
            if tree_state is None:
                return
            saved = tree_state.n_surrogate_scored()
        if saved != self._reported.get(key):
            study.set_user_attr(GP_SCORED_USER_ATTR, saved)
            if saved > self._reported.get(key, 0):
                _logger.info(
                    f"BaMSOO has scored {saved} cells of study {study.study_name!r} with the "
                    "Gaussian process instead of evaluating them."
                )
            self._reported[key] = saved
