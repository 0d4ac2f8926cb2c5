"""Tests of LHSSampler: Optuna's sampler suites, stratification and sharing between workers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
import math
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase
from optuna.testing.pytest_samplers import RelativeSamplerTestCase
import pytest

from optuna_fractal import LHSSampler
from optuna_fractal._lhs import seed_from_study_name


REPO_ROOT = Path(__file__).resolve().parents[1]

X_DIST = FloatDistribution(-5.0, 5.0)
Y_DIST = FloatDistribution(1e-3, 1e3, log=True)


def x_stratum(value: float, n_points: int) -> int:
    return math.floor((value - X_DIST.low) / (X_DIST.high - X_DIST.low) * n_points)


def y_stratum(value: float, n_points: int) -> int:
    u = (math.log(value) - math.log(Y_DIST.low)) / (math.log(Y_DIST.high) - math.log(Y_DIST.low))
    return math.floor(u * n_points)


def two_param_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", X_DIST.low, X_DIST.high)
    y = trial.suggest_float("y", Y_DIST.low, Y_DIST.high, log=True)
    return x + math.log10(y)


def ask_params(study: optuna.Study, n_trials: int) -> list[dict[str, float]]:
    params = []
    for _ in range(n_trials):
        trial = study.ask({"x": X_DIST, "y": Y_DIST})
        params.append(trial.params)
        study.tell(trial, 0.0)
    return params


class TestBasicSuite(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return lambda: LHSSampler(n_points=10, seed=0)


class TestRelativeSuite(RelativeSamplerTestCase):
    @pytest.fixture(params=["per-column", "joint"])
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        if request.param == "per-column":
            return lambda: LHSSampler(n_points=10, seed=0)
        space = {"x": FloatDistribution(-10, 10), "y": FloatDistribution(-10, 10)}
        return lambda: LHSSampler(n_points=10, seed=0, search_space=space)


class TestMultiObjectiveSuite(MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return lambda: LHSSampler(n_points=10, seed=0)


@pytest.mark.parametrize("joint", [False, True])
def test_ten_points_one_per_stratum(joint: bool) -> None:
    space = {"x": X_DIST, "y": Y_DIST} if joint else None
    study = optuna.create_study(sampler=LHSSampler(n_points=10, seed=3, search_space=space))
    study.optimize(two_param_objective, n_trials=10)

    xs = [t.params["x"] for t in study.trials]
    ys = [t.params["y"] for t in study.trials]
    assert sorted(x_stratum(x, 10) for x in xs) == list(range(10))
    assert sorted(y_stratum(y, 10) for y in ys) == list(range(10))


def test_second_block_is_new_hypercube() -> None:
    study = optuna.create_study(sampler=LHSSampler(n_points=10, seed=3))
    study.optimize(two_param_objective, n_trials=20)

    first = [t.params["x"] for t in study.trials[:10]]
    second = [t.params["x"] for t in study.trials[10:]]
    assert sorted(x_stratum(x, 10) for x in second) == list(range(10))
    assert sorted(y_stratum(t.params["y"], 10) for t in study.trials[10:]) == list(range(10))
    assert set(first).isdisjoint(second)


def test_categorical_balanced_over_choices() -> None:
    study = optuna.create_study(sampler=LHSSampler(n_points=10, seed=5))
    study.optimize(lambda t: len(t.suggest_categorical("c", ["a", "b", "c"])), n_trials=10)

    counts = Counter(t.params["c"] for t in study.trials)
    assert sorted(counts.values()) == [3, 3, 4]


@pytest.mark.parametrize("seed", range(20))
def test_categorical_covers_every_choice(seed: int) -> None:
    # Four strata over three choices: two strata straddle a choice boundary, and a mapping
    # through floor(u * k) could leave the middle choice out.
    study = optuna.create_study(sampler=LHSSampler(n_points=4, seed=seed))
    study.optimize(lambda t: float(t.suggest_categorical("c", [0, 1, 2])), n_trials=4)

    counts = Counter(t.params["c"] for t in study.trials)
    assert set(counts) == {0, 1, 2}
    assert max(counts.values()) == 2


def test_int_one_value_per_stratum() -> None:
    study = optuna.create_study(sampler=LHSSampler(n_points=10, seed=7))
    study.optimize(lambda t: t.suggest_int("i", 0, 99), n_trials=10)

    values = [t.params["i"] for t in study.trials]
    assert sorted(v // 10 for v in values) == list(range(10))


def test_int_step_values_balanced() -> None:
    study = optuna.create_study(sampler=LHSSampler(n_points=12, seed=7))
    study.optimize(lambda t: t.suggest_int("i", 0, 10, step=2), n_trials=12)

    counts = Counter(t.params["i"] for t in study.trials)
    assert counts == {0: 2, 2: 2, 4: 2, 6: 2, 8: 2, 10: 2}


def test_float_step_values_on_grid() -> None:
    study = optuna.create_study(sampler=LHSSampler(n_points=5, seed=7))
    study.optimize(lambda t: t.suggest_float("f", 0.0, 1.0, step=0.25), n_trials=5)

    values = sorted(t.params["f"] for t in study.trials)
    assert values == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_int_log_stratified_in_log_space() -> None:
    study = optuna.create_study(sampler=LHSSampler(n_points=10, seed=11))
    study.optimize(lambda t: t.suggest_int("i", 1, 1000, log=True), n_trials=10)

    values = [t.params["i"] for t in study.trials]
    assert all(1 <= v <= 1000 for v in values)
    # log10 spans [log10(0.5), log10(1000.5)], about 3.3 decades. Values <= 10 fill the
    # first 1.32 decades, which contain the first 4 of the 10 strata.
    assert sum(v <= 10 for v in values) >= 4


def test_two_sampler_objects_share_design(sqlite_url: str) -> None:
    # Two Study objects with their own sampler play two workers on one storage.
    worker_a = optuna.create_study(
        study_name="shared", storage=sqlite_url, sampler=LHSSampler(n_points=10)
    )
    worker_b = optuna.load_study(
        study_name="shared", storage=sqlite_url, sampler=LHSSampler(n_points=10)
    )
    for index in range(10):
        worker = worker_a if index % 2 == 0 else worker_b
        trial = worker.ask({"x": X_DIST, "y": Y_DIST})
        worker.tell(trial, 0.0)

    trials = worker_a.get_trials()
    assert [t.number for t in trials] == list(range(10))
    assert sorted(x_stratum(t.params["x"], 10) for t in trials) == list(range(10))
    assert sorted(y_stratum(t.params["y"], 10) for t in trials) == list(range(10))

    third = LHSSampler(n_points=10)
    for trial in trials:
        assert third.sample_independent(worker_b, trial, "x", X_DIST) == trial.params["x"]
        assert third.sample_independent(worker_b, trial, "y", Y_DIST) == trial.params["y"]


def test_default_seed_follows_study_name() -> None:
    same_a = optuna.create_study(study_name="alpha", sampler=LHSSampler(n_points=8))
    same_b = optuna.create_study(study_name="alpha", sampler=LHSSampler(n_points=8))
    other = optuna.create_study(study_name="beta", sampler=LHSSampler(n_points=8))

    params_a = ask_params(same_a, 8)
    assert ask_params(same_b, 8) == params_a
    assert ask_params(other, 8) != params_a


def test_explicit_seed_ignores_study_name() -> None:
    alpha = optuna.create_study(study_name="alpha", sampler=LHSSampler(n_points=8, seed=1))
    beta = optuna.create_study(study_name="beta", sampler=LHSSampler(n_points=8, seed=1))
    changed = optuna.create_study(study_name="alpha", sampler=LHSSampler(n_points=8, seed=2))

    params = ask_params(alpha, 8)
    assert ask_params(beta, 8) == params
    assert ask_params(changed, 8) != params


def test_seed_from_study_name_is_stable() -> None:
    # A fixed value: Python's salted hash() would change it from process to process.
    assert seed_from_study_name("alpha") == 11427140134675862414
    assert 0 <= seed_from_study_name("") < 2**64


def test_column_independent_of_other_params() -> None:
    study_one = optuna.create_study(sampler=LHSSampler(n_points=10, seed=4))
    study_one.optimize(lambda t: t.suggest_float("x", -5, 5), n_trials=10)
    study_two = optuna.create_study(sampler=LHSSampler(n_points=10, seed=4))
    study_two.optimize(two_param_objective, n_trials=10)

    assert [t.params["x"] for t in study_one.trials] == [t.params["x"] for t in study_two.trials]


def test_joint_design_same_on_both_paths() -> None:
    space: dict[str, BaseDistribution] = {"x": X_DIST, "y": Y_DIST}
    sampler = LHSSampler(n_points=10, seed=9, search_space=space)
    study = optuna.create_study(sampler=sampler)
    study.optimize(two_param_objective, n_trials=10)

    assert sampler.infer_relative_search_space(study, study.trials[0]) == {}
    for trial in study.trials:
        relative = sampler.sample_relative(study, trial, space)
        assert relative == trial.params
        assert sampler.sample_independent(study, trial, "x", X_DIST) == trial.params["x"]


def test_joint_design_differs_from_columns() -> None:
    space: dict[str, BaseDistribution] = {"x": X_DIST, "y": Y_DIST}
    joint = optuna.create_study(sampler=LHSSampler(n_points=10, seed=9, search_space=space))
    columns = optuna.create_study(sampler=LHSSampler(n_points=10, seed=9))

    assert ask_params(joint, 10) != ask_params(columns, 10)


def test_default_n_points() -> None:
    space = {"a": X_DIST, "b": Y_DIST, "c": CategoricalDistribution([1, 2])}
    assert LHSSampler().n_points == 10
    assert LHSSampler(search_space=space).n_points == 30
    assert LHSSampler(n_points=7, search_space=space).n_points == 7


def test_reseed_rng_keeps_design() -> None:
    sampler = LHSSampler(n_points=10, seed=2)
    study = optuna.create_study(sampler=sampler)
    trial = study.ask({"x": X_DIST})
    before = sampler.sample_independent(study, study.trials[0], "x", X_DIST)
    sampler.reseed_rng()

    assert sampler.sample_independent(study, study.trials[0], "x", X_DIST) == before
    assert trial.params["x"] == before


def test_n_jobs_two_threads_cover_strata() -> None:
    study = optuna.create_study(sampler=LHSSampler(n_points=10, seed=8))
    study.optimize(two_param_objective, n_trials=10, n_jobs=2)

    assert sorted(x_stratum(t.params["x"], 10) for t in study.trials) == list(range(10))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_points": 0}, ValueError, "n_points must be at least 1, got 0"),
        ({"n_points": 2.5}, TypeError, "n_points must be an int"),
        ({"n_points": True}, TypeError, "n_points must be an int"),
        ({"seed": -1}, ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
        ({"seed": 2**64}, ValueError, "seed must be in"),
        ({"seed": "7"}, TypeError, "seed must be an int or None"),
        ({"search_space": {}}, ValueError, "search_space is empty"),
        ({"search_space": {"x": (0, 1)}}, TypeError, r"search_space\['x'\]"),
        ({"search_space": [("x", X_DIST)]}, TypeError, "search_space must be a dict"),
    ],
)
def test_invalid_arguments_rejected(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        LHSSampler(**kwargs)  # type: ignore[arg-type]


_WORKER_SCRIPT = textwrap.dedent(
    """
    import math
    import os
    import sys
    import time

    import optuna

    from optuna_fractal._lhs import LHSSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(
        sys.argv[1], engine_kwargs={"connect_args": {"timeout": 60}}
    )
    study = optuna.load_study(
        study_name=sys.argv[2], storage=storage, sampler=LHSSampler(n_points=10)
    )


    def objective(trial):
        x = trial.suggest_float("x", -5.0, 5.0)
        y = trial.suggest_float("y", 1e-3, 1e3, log=True)
        trial.set_user_attr("pid", os.getpid())
        time.sleep(0.1)
        return x + math.log10(y)


    study.optimize(objective, n_trials=5)
    """
)


def test_two_processes_share_design(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lhs.db'}"
    optuna.create_study(study_name="lhs-workers", storage=url)
    script = tmp_path / "worker.py"
    script.write_text(_WORKER_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")

    workers = [
        subprocess.Popen(
            [sys.executable, str(script), url, "lhs-workers"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr

    study = optuna.load_study(study_name="lhs-workers", storage=url)
    trials = study.get_trials()
    assert len(trials) == 10
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2
    assert sorted(x_stratum(t.params["x"], 10) for t in trials) == list(range(10))
    assert sorted(y_stratum(t.params["y"], 10) for t in trials) == list(range(10))

    # The points are the design of the study name, whichever worker ran them.
    sampler = LHSSampler(n_points=10)
    for trial in trials:
        assert sampler.sample_independent(study, trial, "x", X_DIST) == trial.params["x"]


def test_design_values_are_python_scalars() -> None:
    study = optuna.create_study(sampler=LHSSampler(n_points=10, seed=0))
    trial = study.ask()
    values = [
        trial.suggest_float("f", 0, 1),
        trial.suggest_int("i", 0, 5),
        trial.suggest_float("g", 1e-3, 1, log=True),
    ]

    assert [type(v) for v in values] == [float, int, float]
    assert not any(isinstance(v, np.generic) for v in values)
