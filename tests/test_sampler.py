from __future__ import annotations

from collections.abc import Callable
import json
import math
import os
from pathlib import Path
import subprocess
import sys
import textwrap
import time

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import RelativeSamplerTestCase
from optuna.testing.pytest_samplers import SingleOnlySamplerTestCase
from optuna.trial import TrialState
import pytest

from optuna_fractal import ENVIRONMENT_FAILURE_ATTR
from optuna_fractal import get_tree
from optuna_fractal import SOOSampler
from optuna_fractal._coordination import CONFIG_KEY
from optuna_fractal._coordination import DECISION_KEY


optuna.logging.set_verbosity(optuna.logging.WARNING)


class TestSOOBasic(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], SOOSampler]:
        return lambda: SOOSampler(seed=0)


class TestSOORelative(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], SOOSampler]:
        return lambda: SOOSampler(seed=0)


class TestSOOSingleObjectiveOnly(SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], SOOSampler]:
        return lambda: SOOSampler(seed=0)


# A plain textbook SOO (Munos, 2011) on [0, 1]^d, maximising f, with K = 3, the widest side
# split first (fewest splits; the first such side on ties) and the middle child reusing its
# parent's value. It returns the points it evaluates, in order.
def textbook_soo(f: Callable[[np.ndarray], float], d: int, n_evaluations: int) -> list[np.ndarray]:
    evaluated: list[np.ndarray] = []

    def evaluate(x: np.ndarray) -> float:
        evaluated.append(x)
        return f(x)

    # A node: [lo, hi, splits per dimension, depth, value, creation index]
    root = [np.zeros(d), np.ones(d), [0] * d, 0, None, 0]
    root[4] = evaluate((root[0] + root[1]) / 2)
    leaves = [root]
    created = 1
    while len(evaluated) < n_evaluations:
        v_max = -math.inf
        depth_limit = max(leaf[3] for leaf in leaves)
        for h in range(depth_limit + 1):
            candidates = [leaf for leaf in leaves if leaf[3] == h]
            if not candidates:
                continue
            best = max(candidates, key=lambda leaf: (leaf[4], -leaf[5]))
            if best[4] < v_max:
                continue
            v_max = best[4]
            leaves = [leaf for leaf in leaves if leaf is not best]
            lo, hi, splits = best[0], best[1], best[2]
            axis = min(range(d), key=lambda i: splits[i])
            width = (hi[axis] - lo[axis]) / 3
            for j in range(3):
                child_lo, child_hi = lo.copy(), hi.copy()
                child_lo[axis] = lo[axis] + j * width
                child_hi[axis] = lo[axis] + (j + 1) * width
                child_splits = list(splits)
                child_splits[axis] += 1
                child = [child_lo, child_hi, child_splits, h + 1, None, created]
                created += 1
                if j == 1:
                    child[4] = best[4]
                else:
                    child[4] = evaluate((child_lo + child_hi) / 2)
                leaves.append(child)
            if len(evaluated) >= n_evaluations:
                break
    return evaluated[:n_evaluations]


def _sphere(x: np.ndarray) -> float:
    shift = np.linspace(0.21, 0.77, len(x))
    return -float(np.sum((x - shift) ** 2))


def _wavy(x: np.ndarray) -> float:
    return float(np.sum(np.sin(7.0 * x) * x) - 0.3 * np.sum(x**2))


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("f", [_sphere, _wavy])
def test_sequence_matches_textbook_soo(d: int, f: Callable[[np.ndarray], float]) -> None:
    n = 60
    expected = textbook_soo(f, d, n)

    def objective(trial: optuna.Trial) -> float:
        x = np.array([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(d)])
        return f(x)

    study = optuna.create_study(direction="maximize", sampler=SOOSampler())
    study.optimize(objective, n_trials=n)
    got = [np.array([t.params[f"x{i}"] for i in range(d)]) for t in study.trials]
    assert len(got) == n
    for index, (a, b) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(a, b, atol=1e-12, err_msg=f"evaluation {index}")


def test_minimise_is_mirror_of_maximise() -> None:
    def f(trial: optuna.Trial) -> float:
        return (trial.suggest_float("x", -2, 2) - 0.7) ** 2

    low = optuna.create_study(direction="minimize", sampler=SOOSampler())
    low.optimize(f, n_trials=30)
    high = optuna.create_study(direction="maximize", sampler=SOOSampler())
    high.optimize(lambda t: -f(t), n_trials=30)
    assert [t.params for t in low.trials] == [t.params for t in high.trials]
    assert low.best_value < 1e-3


def test_mixed_space_values_are_valid() -> None:
    space_seen: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        rank = trial.suggest_int("rank", 2, 64, log=True)
        trial.suggest_int("alpha", 1, 64)
        lr = trial.suggest_float("lr", 1e-6, 1e-1, log=True)
        dropout = trial.suggest_float("dropout", 0.0, 0.5, step=0.05)
        opt = trial.suggest_categorical("opt", ["adam", "sgd", "lion"])
        space_seen.append(trial.params)
        return (math.log(lr) + 7) ** 2 + (rank - 16) ** 2 / 100 + (opt != "sgd") + dropout

    study = optuna.create_study(sampler=SOOSampler())
    study.optimize(objective, n_trials=80)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for params in space_seen:
        assert isinstance(params["rank"], int) and 2 <= params["rank"] <= 64
        assert isinstance(params["alpha"], int) and 1 <= params["alpha"] <= 64
        assert 1e-6 <= params["lr"] <= 1e-1
        assert abs(params["dropout"] / 0.05 - round(params["dropout"] / 0.05)) < 1e-8
        assert params["opt"] in ("adam", "sgd", "lion")
    # No cell of the tree was evaluated twice.
    keys = [tuple(sorted(p.items())) for p in space_seen]
    assert len(keys) == len(set(keys))
    assert study.best_params["opt"] == "sgd"


def test_int_centres_are_rounded_not_truncated() -> None:
    study = optuna.create_study(sampler=SOOSampler())
    study.optimize(lambda t: float(t.suggest_int("n", 0, 9)), n_trials=1)
    # Ten values: the centre of [0, 10) in the unit cube lies between 4 and 5; the nearest
    # value on the lower side is 4, truncation of 0.5 * 9 would also be 4, but 0..8 differs:
    assert study.trials[0].params["n"] == 4
    study = optuna.create_study(sampler=SOOSampler())
    study.optimize(lambda t: float(t.suggest_int("n", 0, 8)), n_trials=1)
    assert study.trials[0].params["n"] == 4
    study = optuna.create_study(sampler=SOOSampler())
    study.optimize(lambda t: float(t.suggest_int("n", 1, 3)), n_trials=1)
    assert study.trials[0].params["n"] == 2


def test_finite_space_is_exhausted_then_sampled_independently() -> None:
    def objective(trial: optuna.Trial) -> float:
        return float(trial.suggest_int("a", 0, 2) + 10 * trial.suggest_int("b", 0, 1))

    study = optuna.create_study(sampler=SOOSampler(seed=0))
    study.optimize(objective, n_trials=9)
    evaluated = [(t.params["a"], t.params["b"]) for t in study.trials[:6]]
    assert sorted(evaluated) == [(a, b) for a in range(3) for b in range(2)]
    roles = [json.loads(t.system_attrs[DECISION_KEY])["role"] for t in study.trials]
    assert roles == ["cell"] * 6 + ["exhausted"] * 3
    assert get_tree(study).n_evaluated == 6


def test_terminal_best_leaf_does_not_stall() -> None:
    # The best cell (a = 0) becomes a single-value leaf early; the search must go on.
    def objective(trial: optuna.Trial) -> float:
        a = trial.suggest_int("a", 0, 1)
        x = trial.suggest_float("x", 0, 1)
        return -10.0 * (a == 0) + (x - 0.3) ** 2

    study = optuna.create_study(sampler=SOOSampler())
    study.optimize(objective, n_trials=40)
    assert len(study.trials) == 40
    assert study.best_params["a"] == 0
    assert abs(study.best_params["x"] - 0.3) < 0.05


def test_failed_cell_is_retried_then_marked_failed() -> None:
    attempts: dict[float, int] = {}

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if abs(x - 1 / 6) < 1e-9:
            attempts[x] = attempts.get(x, 0) + 1
            raise RuntimeError("this cell always fails")
        return (x - 0.8) ** 2

    study = optuna.create_study(sampler=SOOSampler(max_retries=1))
    study.optimize(objective, n_trials=12, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    # Trial 1 (x = 1/6) fails, trial 2 retries the same cell and fails again.
    assert states[1] == TrialState.FAIL
    assert states[2] == TrialState.FAIL
    assert study.trials[1].params == study.trials[2].params
    assert list(attempts.values()) == [2]
    node = get_tree(study).node("r.0")
    assert node.state == "failed"
    assert node.value is None


def test_nan_value_counts_as_failure() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        return float("nan") if x < 0.2 else x

    study = optuna.create_study(sampler=SOOSampler(max_retries=0))
    study.optimize(objective, n_trials=10)
    assert get_tree(study).node("r.0").state == "failed"


def test_foreign_trials_are_kept_out_of_tree() -> None:
    study = optuna.create_study(sampler=SOOSampler())
    study.add_trial(
        optuna.trial.create_trial(
            params={"x": 0.99}, distributions={"x": FloatDistribution(0, 1)}, value=-100.0
        )
    )
    study.enqueue_trial({"x": 0.01})
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.4) ** 2, n_trials=8)
    tree = get_tree(study)
    numbers = {n.trial_number for n in tree.nodes if n.value_source == "evaluated"}
    assert 0 not in numbers
    assert 1 not in numbers
    assert tree.node("r").params == {"x": 0.5}
    assert tree.node("r").trial_number == 2


def test_other_samplers_trials_do_not_break_tree() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    f = lambda t: (t.suggest_float("x", 0, 1) - 0.4) ** 2  # noqa: E731
    study.optimize(f, n_trials=5)
    study.sampler = SOOSampler()
    study.optimize(f, n_trials=10)
    tree = get_tree(study)
    assert tree.node("r").trial_number == 5
    assert tree.n_evaluated == 10


def test_conditional_parameters_go_to_independent_sampler(caplog) -> None:
    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["a", "b"])
        if kind == "a":
            return trial.suggest_float("xa", 0, 1)
        return trial.suggest_float("xb", 0, 1) + 1

    study = optuna.create_study(sampler=SOOSampler(seed=0))
    optuna.logging.enable_propagation()
    with caplog.at_level("WARNING"):
        study.optimize(objective, n_trials=6)
    optuna.logging.disable_propagation()
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert any("xb" in record.getMessage() for record in caplog.records)


def test_multi_objective_is_rejected_clearly() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=SOOSampler())
    with pytest.raises(ValueError, match="multi-objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=1, catch=())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 1}, "k must be an integer >= 2"),
        ({"k": 2.5}, "k must be an integer >= 2"),
        ({"max_depth": 0}, "max_depth must be None or an integer >= 1"),
        ({"max_retries": -1}, "max_retries must be an integer >= 0"),
        ({"decision_timeout": 0}, "decision_timeout must be a positive"),
        ({"decision_timeout": "x"}, "decision_timeout must be a positive"),
        ({"search_space": [1, 2]}, "search_space must map parameter names"),
        ({"search_space": {}}, "search space is empty"),
        ({"search_space": {"x": FloatDistribution(1.0, 1.0)}}, "single value"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SOOSampler(**kwargs)


def test_empty_range_is_rejected_by_optuna() -> None:
    with pytest.raises(ValueError):
        FloatDistribution(2.0, 1.0)


def test_other_k_rejected_storage_untouched(sqlite_url: str) -> None:
    study = optuna.create_study(storage=sqlite_url, study_name="s", sampler=SOOSampler(k=3))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    before = [(t.number, t.state, t.params, t.system_attrs) for t in study.trials]
    other = optuna.load_study(study_name="s", storage=sqlite_url, sampler=SOOSampler(k=4))
    with pytest.raises(ValueError, match="k=3"):
        other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1, catch=())
    after = optuna.load_study(study_name="s", storage=sqlite_url)
    # The rejected attempt leaves one failed trial behind, and the stored trials are unchanged.
    assert [(t.number, t.state, t.params, t.system_attrs) for t in after.trials[:5]] == before
    assert after.trials[5].state == TrialState.FAIL
    assert after._storage.get_study_system_attrs(after._study_id)[CONFIG_KEY]["k"] == 3
    # The failed attempt blocks no later trial: the right sampler continues at once.
    right = optuna.load_study(
        study_name="s", storage=sqlite_url, sampler=SOOSampler(k=3, decision_timeout=1000)
    )
    right.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert right.trials[-1].state == TrialState.COMPLETE


def test_other_sampler_kind_is_rejected_by_class_name(sqlite_url: str) -> None:
    from optuna_fractal import BaMSOOSampler

    study = optuna.create_study(storage=sqlite_url, study_name="s", sampler=SOOSampler())
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    other = optuna.load_study(study_name="s", storage=sqlite_url, sampler=BaMSOOSampler())
    with pytest.raises(ValueError, match="built by SOOSampler, but this sampler is BaMSOOSampler"):
        other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1, catch=())


def test_given_space_starts_workers_together() -> None:
    space = {"x": FloatDistribution(0, 1), "y": IntDistribution(0, 10)}
    study = optuna.create_study(sampler=SOOSampler(search_space=space))
    trials = [study.ask() for _ in range(4)]
    params = [(t.suggest_float("x", 0, 1), t.suggest_int("y", 0, 10)) for t in trials]
    assert len(set(params)) == 4
    assert params[0] == (0.5, 5)


def test_two_asks_before_tell_get_different_cells() -> None:
    study = optuna.create_study(sampler=SOOSampler())
    first = study.ask()
    x0 = first.suggest_float("x", 0, 1)
    study.tell(first, x0)
    a, b = study.ask(), study.ask()
    xa, xb = a.suggest_float("x", 0, 1), b.suggest_float("x", 0, 1)
    assert xa != xb
    records = [json.loads(study.trials[n].system_attrs[DECISION_KEY]) for n in (1, 2)]
    assert records[0]["node"] != records[1]["node"]


def test_new_sampler_on_same_storage_continues(sqlite_url: str) -> None:
    def f(trial: optuna.Trial) -> float:
        return (trial.suggest_float("x", -3, 3) - 1.1) ** 2 + trial.suggest_float("y", -3, 3) ** 2

    straight = optuna.create_study(sampler=SOOSampler())
    straight.optimize(f, n_trials=40)

    study = optuna.create_study(storage=sqlite_url, study_name="c", sampler=SOOSampler())
    study.optimize(f, n_trials=17)
    resumed = optuna.load_study(study_name="c", storage=sqlite_url, sampler=SOOSampler())
    resumed.optimize(f, n_trials=23)
    assert [t.params for t in resumed.trials] == [t.params for t in straight.trials]


_KILLED_WORKER = textwrap.dedent(
    """
    import os, signal, sys
    import optuna
    from optuna_fractal import SOOSampler

    storage = optuna.storages.RDBStorage(sys.argv[1], heartbeat_interval=1, grace_period=2)
    marker = sys.argv[2]

    def objective(trial):
        x = trial.suggest_float("x", -3, 3)
        y = trial.suggest_float("y", -3, 3)
        if trial.number == 9 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return (x - 1.1) ** 2 + y ** 2

    study = optuna.create_study(
        storage=storage, study_name="k", sampler=SOOSampler(), load_if_exists=True
    )
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    study.optimize(objective, n_trials=int(sys.argv[3]) - done)
    """
)


def test_killed_process_resumes_same_cells(tmp_path: Path) -> None:
    def f(trial: optuna.Trial) -> float:
        return (trial.suggest_float("x", -3, 3) - 1.1) ** 2 + trial.suggest_float("y", -3, 3) ** 2

    straight = optuna.create_study(sampler=SOOSampler())
    straight.optimize(f, n_trials=30)

    script = tmp_path / "worker.py"
    script.write_text(_KILLED_WORKER)
    url = f"sqlite:///{tmp_path}/killed.db"
    marker = str(tmp_path / "killed")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    first = subprocess.run([sys.executable, str(script), url, marker, "30"], env=env)
    assert first.returncode == -9
    time.sleep(3)  # Let the heartbeat grace period pass.
    second = subprocess.run([sys.executable, str(script), url, marker, "30"], env=env)
    assert second.returncode == 0

    study = optuna.load_study(study_name="k", storage=url)
    states = [t.state for t in study.trials]
    assert states[9] == TrialState.FAIL
    complete = [t.params for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete == [t.params for t in straight.trials]


def test_interrupted_attempts_do_not_use_retries() -> None:
    space = {"x": FloatDistribution(0.0, 1.0)}
    study = optuna.create_study(sampler=SOOSampler(max_retries=0, search_space=space))
    # A killed worker's trial is failed by another process: Optuna never calls after_trial.
    for attempt in range(4):
        trial = study.ask()
        assert trial.suggest_float("x", 0.0, 1.0) == 0.5
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        expected = "open" if attempt < 3 else "failed"
        assert get_tree(study).node("r").state == expected, f"attempt {attempt}"


def test_objective_failure_uses_retries() -> None:
    space = {"x": FloatDistribution(0.0, 1.0)}
    study = optuna.create_study(sampler=SOOSampler(max_retries=0, search_space=space))
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, state=TrialState.FAIL)
    assert get_tree(study).node("r").state == "failed"


def test_environment_failure_keeps_cell_open() -> None:
    space = {"x": FloatDistribution(0.0, 1.0)}
    study = optuna.create_study(sampler=SOOSampler(max_retries=0, search_space=space))
    for _ in range(5):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr(ENVIRONMENT_FAILURE_ATTR, True)
        study.tell(trial, state=TrialState.FAIL)
        assert get_tree(study).node("r").state == "open"
    trial = study.ask()
    assert trial.suggest_float("x", 0.0, 1.0) == 0.5
    study.tell(trial, 1.0)
    assert get_tree(study).node("r").state == "complete"
