"""Latin hypercube sampler whose design is shared by every worker of a study.

A Latin hypercube of ``n`` points splits each parameter's range into ``n`` equal strata and puts
exactly one point in each stratum (McKay, Beckman and Conover, "A Comparison of Three Methods
for Selecting Values of Input Variables in the Analysis of Output from a Computer Code",
Technometrics 21(2), 1979). Here the design is a pure function of a seed, the parameter names
and ``n``, and design point ``i`` belongs to trial number ``i``. Optuna gives every trial of a
study a unique number on every storage, so workers that share a storage evaluate each design
point once without talking to each other.
"""

from __future__ import annotations

from collections.abc import Mapping
import functools
import hashlib
import math
import numbers
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.samplers import BaseSampler


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial


_logger = optuna.logging.get_logger(__name__)

# Design size per parameter when ``n_points`` is not given and the search space is known:
# 10 points per dimension, the rule of thumb of Loeppky, Sacks and Welch, "Choosing the Sample
# Size of a Computer Experiment: A Practical Guide", Technometrics 51(4), 2009.
_POINTS_PER_PARAM = 10
# Design size when neither ``n_points`` nor the search space is given; it equals the default
# ``n_startup_trials`` of Optuna's model-based samplers.
_DEFAULT_N_POINTS = 10

# Tags that keep the random streams of one-column and joint designs apart.
_COLUMN_STREAM = 0x4C48_5301
_JOINT_STREAM = 0x4C48_5302

_MAX_SEED = 2**64


class LHSSampler(BaseSampler):
    """Sampler that draws a Latin hypercube design, one design point per trial number.

    Trial number ``t`` takes row ``t % n_points`` of design block ``t // n_points``. Block 0 is
    the Latin hypercube of ``n_points`` points. When a study has more trials than that, block
    ``b`` continues with a new, independent Latin hypercube seeded from ``b``, so every full
    block is stratified on its own. Failed, pruned and enqueued trials still use up their
    design point, because the point belongs to the trial number.

    The design is a deterministic function of ``seed``, the parameter names and ``n_points``,
    with the same numpy and scipy versions. With ``seed=None`` the seed is derived from the
    SHA-256 of ``study.study_name``, so all workers of a study share the design without
    sharing a seed, and two studies with different names get different designs.

    Two ways to build the design:

    * Without ``search_space`` (the default), each parameter's column is drawn on its own: a
      random permutation of the strata plus a uniform offset inside each stratum, from a
      generator seeded by ``(seed, parameter name, block)``. Independent permutations per
      column are exactly a Latin hypercube, the same law as
      ``scipy.stats.qmc.LatinHypercube(d=1)`` per column. A column can then be computed from
      ``sample_independent`` alone, one parameter at a time, which is how
      ``optuna_integration.BoTorchSampler`` calls its ``independent_sampler``. Conditional
      parameters and search spaces that grow during the study work too.
    * With ``search_space``, the parameters named there get one joint design from
      ``scipy.stats.qmc.LatinHypercube(optimization="random-cd")``, which permutes values
      within columns to lower the centred discrepancy. Every column stays one point per
      stratum, but the points also spread better in the joint space. The joint design
      depends only on the seed, the sorted names and ``n_points``, so ``sample_independent``
      still computes any one value alone. The optimisation took about 1 s for 200 points in
      10 dimensions on one CPU core (scipy 1.17), once per process and block. Parameters
      outside ``search_space`` use the column design.

    Categorical, stepped float and linear integer parameters are discrete with ``k`` values.
    Stratum ``j`` of ``n`` covers the values with indices from ``floor(j * k / n)`` to
    ``floor((j + 1) * k / n) - 1``, and one of them is drawn. With ``n >= k`` every value then
    appears ``floor(n / k)`` or ``ceil(n / k)`` times in a block, and with ``n <= k`` the
    ``n`` points take ``n`` distinct values, one from each stratum. Log-scaled integers are
    stratified in log space over ``[low - 0.5, high + 0.5]`` and rounded, so that small values
    get the larger share, as in Optuna's own transform. Such a parameter can repeat a value
    within a block.

    Args:
        n_points: Number of points per design block, at least 1. Defaults to ``None``, which
            means 10 per parameter of ``search_space`` when it is given and 10 otherwise.
        seed: Seed of the design, an int in ``[0, 2**64)``. Defaults to ``None``, which
            derives the seed from the study name.
        search_space: Parameter name to Optuna distribution. When given, these parameters
            share one joint design. A parameter is matched by name and sampled from the
            distribution the objective suggests. Defaults to ``None`` (one column per
            parameter).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_points < 1``, ``seed`` is out of range, or ``search_space`` is
            empty.

    Example:
        ```python
        import optuna
        from optuna_fractal import LHSSampler


        def objective(trial: optuna.Trial) -> float:
            x = trial.suggest_float("x", -5.0, 5.0)
            y = trial.suggest_int("y", 0, 10)
            return x**2 + y


        study = optuna.create_study(sampler=LHSSampler(n_points=20, seed=42))
        study.optimize(objective, n_trials=20)
        ```

    """

    def __init__(
        self,
        *,
        n_points: int | None = None,
        seed: int | None = None,
        search_space: Mapping[str, BaseDistribution] | None = None,
    ) -> None:
        self._search_space = _validate_search_space(search_space)
        if n_points is None:
            if self._search_space is None:
                n_points = _DEFAULT_N_POINTS
            else:
                n_points = _POINTS_PER_PARAM * len(self._search_space)
        self._n_points = _validate_n_points(n_points)
        self._seed = _validate_seed(seed)
        # Names of the parameters that get a column of the joint design, in a fixed order.
        # Single-value parameters need no column.
        self._joint_names: tuple[str, ...] = ()
        if self._search_space is not None:
            self._joint_names = tuple(
                sorted(name for name, dist in self._search_space.items() if not dist.single())
            )
        self._reported_blocks: set[int] = set()

    @property
    def n_points(self) -> int:
        """Number of points per design block."""
        return self._n_points

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        # Every value comes from sample_independent, which finds a parameter's column by name.
        # An empty relative space also keeps Optuna from rejecting a suggestion whose
        # distribution differs from the one given in ``search_space``.
        return {}

    def sample_relative(
        self,
        study: Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        return {
            name: self.sample_independent(study, trial, name, distribution)
            for name, distribution in search_space.items()
        }

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_distribution.single():
            return _single_value(param_distribution)

        block, row = divmod(trial.number, self._n_points)
        if block > 0 and block not in self._reported_blocks:
            self._reported_blocks.add(block)
            _logger.info(
                f"Trial {trial.number} starts design block {block}: the {self._n_points}-point "
                "Latin hypercube is used up, so an independent one continues it."
            )

        seed = self._design_seed(study)
        if param_name in self._joint_names:
            strata, offsets = _joint_design(seed, self._joint_names, block, self._n_points)
            column = self._joint_names.index(param_name)
            stratum = int(strata[row, column])
            offset = float(offsets[row, column])
        else:
            strata_1d, offsets_1d = _column_design(seed, param_name, block, self._n_points)
            stratum = int(strata_1d[row])
            offset = float(offsets_1d[row])
        return _value_in_stratum(param_distribution, stratum, offset, self._n_points)

    def reseed_rng(self) -> None:
        """Keep the seed unchanged.

        Optuna 5.1 calls this in every thread of ``study.optimize(n_jobs=...)`` with
        ``n_jobs != 1``. A new seed would give each thread a different design, and the
        threads would no longer share one.
        """

    def _design_seed(self, study: Study) -> int:
        if self._seed is not None:
            return self._seed
        return seed_from_study_name(study.study_name)


def seed_from_study_name(study_name: str) -> int:
    """Derive a 64-bit design seed from a study name, the same in every process.

    Python's ``hash`` is salted per process, so the seed comes from SHA-256 instead.
    """
    digest = hashlib.sha256(study_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def _stream_entropy(tag: int, seed: int, block: int, names: tuple[str, ...]) -> np.ndarray:
    """Encode a design's identity as fixed-width 32-bit words for ``numpy.random.SeedSequence``.

    Fixed widths keep distinct ``(seed, block, names)`` from encoding to the same words.
    """
    words = [tag, seed & 0xFFFF_FFFF, seed >> 32, block & 0xFFFF_FFFF, block >> 32, len(names)]
    for name in names:
        digest = hashlib.sha256(name.encode("utf-8")).digest()
        words.extend(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4))
    return np.array(words, dtype=np.uint32)


@functools.lru_cache(maxsize=1024)
def _column_design(
    seed: int, param_name: str, block: int, n_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the stratum index and the offset inside the stratum of every row of one column."""
    entropy = _stream_entropy(_COLUMN_STREAM, seed, block, (param_name,))
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    strata = rng.permutation(n_points)
    offsets = rng.random(n_points)
    strata.setflags(write=False)
    offsets.setflags(write=False)
    return strata, offsets


@functools.lru_cache(maxsize=16)
def _joint_design(
    seed: int, names: tuple[str, ...], block: int, n_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the stratum indices and offsets of a joint design, both ``(n_points, d)``."""
    # scipy.stats is imported here so that importing this module stays cheap.
    from scipy.stats import qmc

    entropy = _stream_entropy(_JOINT_STREAM, seed, block, names)
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    optimization = "random-cd" if len(names) > 1 and n_points > 1 else None
    sample = qmc.LatinHypercube(d=len(names), optimization=optimization, rng=rng).random(n_points)

    # Each column contains one value per stratum, so a value's rank in its column is its stratum.
    # The rank is exact, unlike floor(u * n), which rounding can push into the next stratum.
    strata = np.argsort(np.argsort(sample, axis=0, kind="stable"), axis=0, kind="stable")
    offsets = np.clip(sample * n_points - strata, 0.0, np.nextafter(1.0, 0.0))
    strata.setflags(write=False)
    offsets.setflags(write=False)
    return strata, offsets


def _value_in_stratum(
    distribution: BaseDistribution, stratum: int, offset: float, n_points: int
) -> Any:
    """Map stratum ``stratum`` of ``n_points`` and an offset in ``[0, 1)`` to a parameter value."""
    if isinstance(distribution, CategoricalDistribution):
        index = _discrete_index(stratum, offset, n_points, len(distribution.choices))
        return distribution.choices[index]

    if isinstance(distribution, IntDistribution):
        if distribution.log:
            log_low = math.log(distribution.low - 0.5)
            log_high = math.log(distribution.high + 0.5)
            u = (stratum + offset) / n_points
            value = round(math.exp(log_low + u * (log_high - log_low)))
            return int(min(max(value, distribution.low), distribution.high))
        n_values = (distribution.high - distribution.low) // distribution.step + 1
        index = _discrete_index(stratum, offset, n_points, n_values)
        return int(distribution.low + index * distribution.step)

    if isinstance(distribution, FloatDistribution):
        low, high = distribution.low, distribution.high
        if distribution.step is not None:
            n_values = int(round((high - low) / distribution.step)) + 1
            index = _discrete_index(stratum, offset, n_points, n_values)
            return float(min(low + index * distribution.step, high))
        u = (stratum + offset) / n_points
        if distribution.log:
            value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            value = low + u * (high - low)
        return float(min(max(value, low), high))

    raise TypeError(
        f"LHSSampler cannot sample {distribution!r}: use FloatDistribution, IntDistribution or "
        "CategoricalDistribution."
    )


def _discrete_index(stratum: int, offset: float, n_points: int, n_values: int) -> int:
    """Pick the index of one of ``n_values`` ordered values for a stratum of ``n_points``."""
    first = stratum * n_values // n_points
    end = (stratum + 1) * n_values // n_points
    if end <= first:
        # More strata than values: this stratum shares the value at its start.
        return first
    return first + min(int(offset * (end - first)), end - first - 1)


def _single_value(distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0]
    if isinstance(distribution, IntDistribution):
        return int(distribution.low)
    if isinstance(distribution, FloatDistribution):
        return float(distribution.low)
    raise TypeError(
        f"LHSSampler cannot sample {distribution!r}: use FloatDistribution, IntDistribution or "
        "CategoricalDistribution."
    )


def _validate_n_points(n_points: object) -> int:
    if isinstance(n_points, bool) or not isinstance(n_points, numbers.Integral):
        raise TypeError(f"n_points must be an int, got {n_points!r}.")
    if n_points < 1:
        raise ValueError(
            f"n_points must be at least 1, got {n_points}. Pass the number of trials the "
            "Latin hypercube should cover, or None for the default."
        )
    return int(n_points)


def _validate_seed(seed: object) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {seed!r}.")
    if not 0 <= seed < _MAX_SEED:
        raise ValueError(
            f"seed must be in [0, 2**64), got {seed}. Pass a non-negative seed, or None to "
            "derive it from the study name."
        )
    return int(seed)


def _validate_search_space(
    search_space: Mapping[str, BaseDistribution] | None,
) -> dict[str, BaseDistribution] | None:
    if search_space is None:
        return None
    if not isinstance(search_space, Mapping):
        raise TypeError(
            f"search_space must be a dict of parameter name to distribution, got "
            f"{type(search_space).__name__}."
        )
    if len(search_space) == 0:
        raise ValueError(
            "search_space is empty. Pass the parameters to sample jointly, or None to sample "
            "every parameter on its own."
        )
    supported = (CategoricalDistribution, FloatDistribution, IntDistribution)
    for name, distribution in search_space.items():
        if not isinstance(name, str):
            raise TypeError(f"search_space keys must be parameter names (str), got {name!r}.")
        if not isinstance(distribution, supported):
            raise TypeError(
                f"search_space[{name!r}] is {distribution!r}; use FloatDistribution, "
                "IntDistribution or CategoricalDistribution."
            )
    return dict(search_space)
