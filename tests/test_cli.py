"""The ``optuna-fractal`` command: arguments, objectives, budget, fail-stale, password masking."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
import signal
import subprocess
import sys
import textwrap
import time

from conftest import unique_study_name
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from optuna_fractal import SOOSampler
from optuna_fractal._coordination import DECISION_KEY
from optuna_fractal._stale import fail_stale_trials
from optuna_fractal._stale import stale_trials
from optuna_fractal._storages import open_storage
from optuna_fractal._storages import storage_kind
from optuna_fractal._urls import mask_url
from optuna_fractal._worker import StopReason
from optuna_fractal._worker import Worker
from optuna_fractal._worker import WorkerTerminated
from optuna_fractal.cli import build_sampler
from optuna_fractal.cli import CommandError
from optuna_fractal.cli import dashboard_command
from optuna_fractal.cli import load_config_objective
from optuna_fractal.cli import load_objective
from optuna_fractal.cli import main
from optuna_fractal.cli import SAMPLERS
from optuna_fractal.cli import worker_seed
from optuna_fractal.testing_objectives import branin


REPO = Path(__file__).resolve().parents[1]
BRANIN = "optuna_fractal.testing_objectives:branin"
SECRET = "s3cr3t-Pa55"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _env(sleep: float = 0.0) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OPTUNA_FRACTAL_OBJECTIVE_SLEEP"] = str(sleep)
    return env


def run_cli(*args: str, sleep: float = 0.0, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optuna_fractal.cli", *args],
        capture_output=True,
        text=True,
        env=_env(sleep),
        cwd=REPO,
        timeout=timeout,
    )


def run_args(url: str, study_name: str, n_trials: int, *extra: str) -> list[str]:
    return [
        "run",
        "--storage",
        url,
        "--study-name",
        study_name,
        "--objective",
        BRANIN,
        "--n-trials",
        str(n_trials),
        "--no-progress-bar",
        *extra,
    ]


# Password masking.


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+psycopg2://alice:s3cret@db.example:5432/hpo",
            "postgresql+psycopg2://alice:***@db.example:5432/hpo",
        ),
        ("mysql+pymysql://root:pw@127.0.0.1/test", "mysql+pymysql://root:***@127.0.0.1/test"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://u:p@ss@w0rd@host/db", "postgresql://u:***@host/db"),
        (
            "postgresql://host/db?user=u&password=pw&sslmode=require",
            "postgresql://host/db?user=u&password=***&sslmode=require",
        ),
        (
            "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
            "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
        ),
        ("postgresql://host:5432/db", "postgresql://host:5432/db"),
        ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),
        (
            "two: mysql://a:b@h/d and redis://:c@h:1/0",
            "two: mysql://a:***@h/d and redis://:***@h:1/0",
        ),
    ],
)
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_dashboard_command_masks_password(tmp_path: Path) -> None:
    command = dashboard_command(f"postgresql+psycopg2://alice:{SECRET}@db:5432/hpo")
    assert SECRET not in command
    assert command == (
        "optuna-dashboard --host 127.0.0.1 --port 8080 'postgresql+psycopg2://alice:***@db:5432/hpo'"
    )
    journal = dashboard_command(f"journal:{tmp_path}/j.log")
    assert journal.endswith(f"'{tmp_path}/j.log'")


@pytest.mark.server
def test_run_never_prints_password(postgres_url: str) -> None:
    # The server trusts local connections, so it ignores the password but the URL carries it.
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)
    assert SECRET in url
    study_name = unique_study_name("mask")
    result = run_cli(*run_args(url, study_name, 3))
    try:
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert SECRET not in output
        assert "postgres:***@" in output
        assert "optuna-dashboard --host 127.0.0.1 --port 8080" in result.stdout
    finally:
        optuna.delete_study(study_name=study_name, storage=postgres_url)


def test_unreachable_storage_fails_at_once_without_password() -> None:
    code = (
        "import sys\n"
        "import optuna_fractal._storages as storages\n"
        "storages.SETUP_ATTEMPTS = 2\n"
        "from optuna_fractal.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    # Port 9 (discard) on the loopback address has no database server.
    url = f"postgresql+psycopg2://alice:{SECRET}@127.0.0.1:9/nothing"
    result = subprocess.run(
        [sys.executable, "-c", code, *run_args(url, "unreachable", 3)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert SECRET not in output
    # A refused connection does not go away by waiting: no retries.
    assert "attempt 1 of 2" not in output
    assert "alice:***@127.0.0.1:9" in output


def test_password_with_slash_is_masked() -> None:
    from optuna_fractal._urls import mask_url

    url = "postgresql+psycopg2://postgres:se/cr@t@127.0.0.1:5432/test"
    assert mask_url(url) == "postgresql+psycopg2://postgres:***@127.0.0.1:5432/test"
    assert mask_url(f"joins '{url}' now") == (
        "joins 'postgresql+psycopg2://postgres:***@127.0.0.1:5432/test' now"
    )


# Storages.


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("sqlite:///x.db", "rdb"),
        ("postgresql+psycopg2://u@h/db", "rdb"),
        ("journal:/tmp/x.log", "journal-file"),
        ("redis://127.0.0.1:6379/0?prefix=a", "journal-redis"),
        ("grpc://127.0.0.1:13000", "grpc"),
    ],
)
def test_storage_kind(url: str, kind: str) -> None:
    assert storage_kind(url) == kind


def test_invalid_storage_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="Invalid storage URL 'study.db'"):
        storage_kind("study.db")


def test_heartbeat_on_journal_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fail-stale"):
        open_storage(f"journal:{tmp_path}/j.log", heartbeat_interval=10)


def test_missing_storage_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPTUNA_FRACTAL_STORAGE", raising=False)
    result = run_cli("best", "--study-name", "x")
    assert result.returncode == 1
    assert "No storage given" in result.stderr


# Objectives and samplers.


def test_load_objective_from_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_cwd_objective.py").write_text(
        textwrap.dedent(
            """
            direction = "maximize"

            def f(trial):
                return trial.suggest_float("x", 0, 1)

            f.direction = direction
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    objective = load_objective("my_cwd_objective:f")
    assert objective.direction == "maximize"
    assert objective.search_space is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "Use MODULE:CALLABLE"),
        ("optuna_fractal_no_such_module:f", "Cannot import the objective module"),
        ("optuna_fractal.testing_objectives:nope", "has no attribute 'nope'"),
        ("optuna_fractal.testing_objectives:SLEEP_VARIABLE", "not a callable"),
    ],
)
def test_invalid_objective_is_reported(spec: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        load_objective(spec)


def test_bundled_config_gives_space_and_direction() -> None:
    objective = load_config_objective("cpu-tiny")
    assert objective.direction == "minimize"
    assert objective.search_space
    sampler = build_sampler(
        "soo",
        seed=0,
        shared_seed=0,
        search_space=objective.search_space,
        n_trials=10,
        decision_timeout=None,
    )
    assert sampler._space is not None
    assert set(sampler._space.distributions) == set(objective.search_space)


def test_unknown_config_is_reported() -> None:
    with pytest.raises(CommandError, match="neither a config file nor a bundled config"):
        load_config_objective("no-such-config")


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_builds(name: str) -> None:
    space = {"x": FloatDistribution(0.0, 1.0)}
    sampler = build_sampler(
        name, seed=1, shared_seed=1, search_space=space, n_trials=12, decision_timeout=30.0
    )
    assert isinstance(sampler, optuna.samplers.BaseSampler)


def test_worker_seed() -> None:
    assert worker_seed(None, 3) is None
    assert worker_seed(10, 0) == 10
    assert worker_seed(10, 3) == 13
    assert worker_seed(10, None) == worker_seed(10, None)
    assert worker_seed(10, None) != worker_seed(11, None)


# The run command.


def test_run_meets_budget_and_prints_best(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    study_name = unique_study_name("run")
    assert main(run_args(sqlite_url, study_name, 12)) == 0
    study = optuna.load_study(study_name=study_name, storage=sqlite_url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 12
    output = capsys.readouterr().out
    assert f"Best trial of study '{study_name}': number {study.best_trial.number}" in output
    assert f"optuna-dashboard --host 127.0.0.1 --port 8080 '{sqlite_url}'" in output

    # A second worker finds the budget met and runs nothing.
    assert main(run_args(sqlite_url, study_name, 12)) == 0
    assert len(study.get_trials()) == 12


def test_run_continues_to_larger_budget(sqlite_url: str) -> None:
    study_name = unique_study_name("grow")
    assert main(run_args(sqlite_url, study_name, 5)) == 0
    assert main(run_args(sqlite_url, study_name, 9)) == 0
    study = optuna.load_study(study_name=study_name, storage=sqlite_url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 9


def test_failed_trials_stop_worker(sqlite_url: str) -> None:
    study_name = unique_study_name("fail")
    args = run_args(sqlite_url, study_name, 10, "--max-failed-trials", "3")
    args[args.index(BRANIN)] = "optuna_fractal.testing_objectives:failing"
    assert main(args) == 1
    study = optuna.load_study(study_name=study_name, storage=sqlite_url)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3


def test_direction_conflict_is_reported(sqlite_url: str) -> None:
    study_name = unique_study_name("direction")
    optuna.create_study(storage=sqlite_url, study_name=study_name, direction="maximize")
    assert main(run_args(sqlite_url, study_name, 3)) == 1
    assert main(run_args(sqlite_url, study_name, 3, "--direction", "maximize")) == 1
    study = optuna.load_study(study_name=study_name, storage=sqlite_url)
    assert study.trials == []


def test_exhausted_space_stops_worker(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "finite_objective.py").write_text(
        textwrap.dedent(
            """
            from optuna.distributions import IntDistribution

            def f(trial):
                return (trial.suggest_int("n", 0, 4) - 3) ** 2

            f.search_space = {"n": IntDistribution(0, 4)}
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    study_name = unique_study_name("finite")
    args = run_args(sqlite_url, study_name, 50)
    args[args.index(BRANIN)] = "finite_objective:f"
    assert main(args) == 0
    study = optuna.load_study(study_name=study_name, storage=sqlite_url)
    values = sorted(t.params["n"] for t in study.trials[:5])
    assert values == [0, 1, 2, 3, 4]
    # The trial that found nothing left to evaluate ends the worker.
    assert len(study.trials) == 6


def test_dashboard_every_saves_summary(sqlite_url: str) -> None:
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    study_name = unique_study_name("dashboard")
    assert main(run_args(sqlite_url, study_name, 6, "--dashboard-every", "3")) == 0
    study = optuna.load_study(study_name=study_name, storage=sqlite_url)
    assert "Partition tree" in optuna_dashboard.get_note(study)


def test_dashboard_every_needs_partition_sampler(sqlite_url: str) -> None:
    study_name = unique_study_name("tpe")
    args = run_args(sqlite_url, study_name, 3, "--sampler", "tpe")
    assert main([*args, "--dashboard-every", "2"]) == 1
    # The invalid option is reported before the study is created.
    assert study_name not in optuna.get_all_study_names(sqlite_url)


@pytest.mark.parametrize(
    "extra",
    [
        ["--n-trials", "0"],
        ["--timeout", "-1"],
        ["--sampler", "cmaes"],
        ["--heartbeat-interval", "0"],
    ],
)
def test_invalid_arguments_exit_2(sqlite_url: str, extra: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main([*run_args(sqlite_url, "x", 3), *extra])
    assert raised.value.code == 2


def test_sigterm_fails_running_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/term.db"
    study_name = unique_study_name("term")
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "optuna_fractal.cli", *run_args(url, study_name, 5)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(sleep=30.0),
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        running: list = []
        while not running and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name=study_name, storage=url)
            except KeyError:
                continue
            running = study.get_trials(states=(TrialState.RUNNING,))
        assert running, "the worker never started a trial"
        time.sleep(0.5)  # Let the worker enter the objective.
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 143
    finally:
        worker.kill()
        log.close()
    study = optuna.load_study(study_name=study_name, storage=url)
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_stop_request_during_ask_waits_for_decision(sqlite_url: str) -> None:
    called: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        called.append(trial.number)
        return branin(trial)

    class StopWhileSampling(SOOSampler):
        def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
            super().before_trial(study, trial)
            if trial.number == 2:
                worker.request_stop()  # What the SIGTERM handler does.

    sampler = StopWhileSampling(search_space=branin.search_space)
    study = optuna.create_study(storage=sqlite_url, sampler=sampler)
    worker = Worker(study, objective, 10, progress_bar=False)
    with pytest.raises(WorkerTerminated):
        worker.run()

    assert called == [0, 1]
    stopped = study.trials[2]
    assert stopped.state == TrialState.FAIL
    # The decision was published before the trial failed, so no later trial waits for it.
    assert DECISION_KEY in stopped.system_attrs
    assert len(study.trials) == 3


def test_second_stop_request_raises_at_once(sqlite_url: str) -> None:
    study = optuna.create_study(storage=sqlite_url)
    worker = Worker(study, branin, 3, progress_bar=False)
    worker.request_stop()
    with pytest.raises(WorkerTerminated):
        worker.request_stop()
    assert worker.run().reason == StopReason.TERMINATED
    assert study.trials == []


# fail-stale and best.


def test_fail_stale_fails_only_old_trials(sqlite_url: str) -> None:
    study = optuna.create_study(storage=sqlite_url, study_name=unique_study_name("stale"))
    old = study.ask()
    time.sleep(1.5)
    young = study.ask()
    done = study.ask()
    study.tell(done, 1.0)

    later = datetime.datetime.now() + datetime.timedelta(seconds=0.1)
    assert [t.number for t in stale_trials(study, 1.0, now=later)] == [old.number]
    args = ["fail-stale", "--storage", sqlite_url, "--study-name", study.study_name]
    assert main([*args, "--older-than", "1.0"]) == 0

    states = {t.number: t.state for t in study.get_trials()}
    assert states == {
        old.number: TrialState.FAIL,
        young.number: TrialState.RUNNING,
        done.number: TrialState.COMPLETE,
    }
    # Nothing is left to fail, and a finished trial is never touched.
    assert fail_stale_trials(study, 1.0) == []


def test_fail_stale_rejects_bad_threshold(sqlite_url: str) -> None:
    study = optuna.create_study(storage=sqlite_url)
    with pytest.raises(ValueError, match="older_than must be a positive number"):
        fail_stale_trials(study, 0)
    with pytest.raises(SystemExit):
        main(["fail-stale", "--storage", sqlite_url, "--study-name", "x", "--older-than", "0"])


def test_best_command(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study(storage=sqlite_url, study_name=unique_study_name("best"))
    args = ["best", "--storage", sqlite_url, "--study-name", study.study_name]
    assert main(args) == 0
    assert "has no completed trial yet" in capsys.readouterr().out
    study.enqueue_trial({"x": 0.25})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert main(args) == 0
    assert "value 0.25, params {'x': 0.25}" in capsys.readouterr().out
    assert main(["best", "--storage", sqlite_url, "--study-name", "missing"]) == 1


def test_grace_period_without_heartbeat_is_rejected(tmp_path: Path) -> None:
    from optuna_fractal.cli import main

    code = main(
        [
            "run",
            "--storage",
            f"sqlite:///{tmp_path}/g.db",
            "--study-name",
            "g",
            "--objective",
            "optuna_fractal.testing_objectives:branin",
            "--n-trials",
            "1",
            "--grace-period",
            "3",
        ]
    )
    assert code != 0
    assert not (tmp_path / "g.db").exists()
