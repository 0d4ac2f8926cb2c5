from __future__ import annotations

import json
import math
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
import pytest

from optuna_fractal import BaMSOOSampler
from optuna_fractal import get_tree
from optuna_fractal._bamsoo_math import beta_n
from optuna_fractal._coordination import DECISION_KEY
from optuna_fractal._coordination import GP_SCORED_USER_ATTR
from optuna_fractal._surrogate import SurrogateFitError


optuna.logging.set_verbosity(optuna.logging.WARNING)
REPO = Path(__file__).resolve().parents[1]


def _bowl(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    return 10.0 * ((x - 0.15) ** 2 + (y - 0.2) ** 2)


def test_hopeless_region_is_scored_not_evaluated() -> None:
    study = optuna.create_study(sampler=BaMSOOSampler(seed=0))
    study.optimize(_bowl, n_trials=40)
    tree = get_tree(study)
    scored = [n for n in tree.nodes if n.value_source == "gp" and not n.inherits]
    assert len(scored) >= 5
    assert tree.n_gp_scored == len(scored)
    assert study.user_attrs[GP_SCORED_USER_ATTR] == len(scored)
    # In the region x > 2/3, far from the minimum at (0.15, 0.2), SOO alone would keep
    # evaluating cells; BaMSOO evaluates the first one only and scores the rest.
    evaluated = [n for n in tree.nodes if n.value_source == "evaluated" and not n.inherits]
    assert [n.id for n in evaluated if n.params["x"] > 2 / 3] == ["r.2"]
    assert sum(1 for n in scored if n.params["x"] > 2 / 3) >= 5
    # Every scored value is a lower bound (minimising: above the best value) ...
    for node in scored:
        assert node.value is not None and node.value > study.best_value
        assert node.trial_number is None
    # ... and no trial evaluated the centre of a scored cell.
    evaluated = {(t.params["x"], t.params["y"]) for t in study.trials}
    assert all((n.params["x"], n.params["y"]) not in evaluated for n in scored)
    assert study.best_value < 0.05


def test_only_real_evaluations_train_the_gp() -> None:
    seen_sizes: list[int] = []

    class RecordingGP:
        def __init__(self, seed: int | None) -> None:
            from optuna_fractal._surrogate import BoTorchGP

            self._gp = BoTorchGP(seed=seed)

        def fit(self, x: np.ndarray, y: np.ndarray) -> None:
            seen_sizes.append(len(x))
            self._gp.fit(x, y)

        def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return self._gp.predict(x)

    study = optuna.create_study(sampler=BaMSOOSampler(seed=0, surrogate=RecordingGP))
    study.optimize(_bowl, n_trials=25)
    evaluated_counts = []
    for trial in study.trials:
        record = json.loads(trial.system_attrs[DECISION_KEY])
        if record["expanded"]:
            evaluated_counts.append(
                sum(1 for t in study.trials if t.number < trial.number and t.state.is_finished())
            )
    # One fit per decision that expands, on the real evaluations only (the middle children
    # inherit and are not separate points).
    assert len(seen_sizes) >= 5
    assert all(size <= count for size, count in zip(seen_sizes, evaluated_counts[1:] or [0]))
    assert max(seen_sizes) <= len(study.trials)


def test_failing_gp_falls_back_to_real_evaluations(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenGP:
        def __init__(self, seed: int | None) -> None:
            pass

        def fit(self, x: np.ndarray, y: np.ndarray) -> None:
            raise SurrogateFitError("singular data")

        def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            raise AssertionError("predict must not be called after a failed fit")

    study = optuna.create_study(sampler=BaMSOOSampler(surrogate=BrokenGP))
    optuna.logging.enable_propagation()
    with caplog.at_level("WARNING"):
        study.optimize(_bowl, n_trials=12)
    optuna.logging.disable_propagation()
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert get_tree(study).n_gp_scored == 0
    assert any("could not be fitted" in r.getMessage() for r in caplog.records)


def test_all_equal_values_fall_back(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(sampler=BaMSOOSampler(seed=0))
    optuna.logging.enable_propagation()
    with caplog.at_level("WARNING"):
        study.optimize(lambda t: 0.0 * t.suggest_float("x", 0, 1), n_trials=10)
    optuna.logging.disable_propagation()
    assert len(study.trials) == 10
    assert get_tree(study).n_gp_scored == 0


def test_infinite_values_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        return math.inf if x > 0.8 else (x - 0.3) ** 2

    study = optuna.create_study(sampler=BaMSOOSampler(seed=0))
    optuna.logging.enable_propagation()
    with caplog.at_level("WARNING"):
        study.optimize(objective, n_trials=15)
    optuna.logging.disable_propagation()
    assert len(study.trials) == 15
    assert any("infinite" in r.getMessage() for r in caplog.records)


def test_nan_values_fail_the_trial_not_the_study() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        return float("nan") if x < 0.2 else (x - 0.6) ** 2

    study = optuna.create_study(sampler=BaMSOOSampler(seed=0))
    study.optimize(objective, n_trials=15)
    assert len(study.trials) == 15
    assert any(t.state == TrialState.FAIL for t in study.trials)


@pytest.mark.parametrize("eta", [0.0, -0.1, 1.5, float("nan"), "0.5", True])
def test_eta_outside_range_is_rejected(eta: object) -> None:
    with pytest.raises(ValueError, match="eta must be a number in"):
        BaMSOOSampler(eta=eta)  # type: ignore[arg-type]


def test_beta_grows_with_n_and_shrinks_with_eta() -> None:
    assert beta_n(10, 0.5) > beta_n(2, 0.5)
    assert beta_n(10, 0.05) > beta_n(10, 0.5)
    assert math.isclose(beta_n(1, 1.0), math.sqrt(2 * math.log(math.pi**2 / 6)))


_CONTINUE = textwrap.dedent(
    """
    import json, sys
    import optuna
    from optuna_fractal import BaMSOOSampler, get_tree

    def bowl(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_float("y", 0.0, 1.0)
        return 10.0 * ((x - 0.15) ** 2 + (y - 0.2) ** 2)

    study = optuna.load_study(study_name="b", storage=sys.argv[1], sampler=BaMSOOSampler(seed=0))
    if sys.argv[2] == "tree":
        tree = get_tree(study)
        print(json.dumps([[n.id, n.state, n.value, n.value_source] for n in tree.nodes]))
    else:
        study.optimize(bowl, n_trials=int(sys.argv[2]))
    """
)


def test_restart_in_new_process_makes_same_decisions(tmp_path: Path) -> None:
    straight = optuna.create_study(sampler=BaMSOOSampler(seed=0))
    straight.optimize(_bowl, n_trials=30)

    url = f"sqlite:///{tmp_path}/b.db"
    study = optuna.create_study(storage=url, study_name="b", sampler=BaMSOOSampler(seed=0))
    study.optimize(_bowl, n_trials=20)
    script = tmp_path / "continue.py"
    script.write_text(_CONTINUE)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, str(script), url, "10"], env=env, check=True)

    resumed = optuna.load_study(study_name="b", storage=url)
    assert [t.params for t in resumed.trials] == [t.params for t in straight.trials]

    # The tree rebuilt in yet another process is the tree of the uninterrupted run.
    out = subprocess.run(
        [sys.executable, str(script), url, "tree"], env=env, check=True, capture_output=True
    )
    rebuilt = json.loads(out.stdout)
    expected = [[n.id, n.state, n.value, n.value_source] for n in get_tree(straight).nodes]
    assert len(rebuilt) == len(expected)
    for got, want in zip(rebuilt, expected):
        assert got[0] == want[0] and got[1] == want[1] and got[3] == want[3]
        assert (got[2] is None and want[2] is None) or math.isclose(got[2], want[2], rel_tol=1e-9)


def test_search_space_argument_and_minimise_maximise_mirror() -> None:
    space = {"x": FloatDistribution(0.0, 1.0)}
    f = lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.71) ** 2  # noqa: E731
    low = optuna.create_study(sampler=BaMSOOSampler(seed=1, search_space=space))
    low.optimize(f, n_trials=15)
    high = optuna.create_study(
        direction="maximize", sampler=BaMSOOSampler(seed=1, search_space=space)
    )
    high.optimize(lambda t: -f(t), n_trials=15)
    assert [t.params for t in low.trials] == [t.params for t in high.trials]
