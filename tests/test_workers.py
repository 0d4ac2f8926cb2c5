"""Many worker processes on one study: every storage, killed workers, concurrent setup.

The workers are real processes running ``optuna-fractal run``. After each run the study must
satisfy the coordination invariants:

* no two COMPLETE trials share a cell, by the node ids of their decision records and by their
  parameters;
* every claimed cell is COMPLETE or open again, or failed once its retries are used up;
* no trial stays RUNNING.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
import json
import logging
import math
import multiprocessing
import os
from pathlib import Path
import pickle
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any
import uuid
import warnings

from conftest import unique_study_name
import optuna
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from optuna_fractal import get_tree
from optuna_fractal import SOOSampler
from optuna_fractal._coordination import DECISION_KEY
from optuna_fractal._stale import fail_stale_trials
from optuna_fractal._storages import open_storage
from optuna_fractal.testing_objectives import branin


REPO = Path(__file__).resolve().parents[1]
BRANIN = "optuna_fractal.testing_objectives:branin"
N_WORKERS = 8
MAX_RETRIES = 1  # SOOSampler's default, which the worker command keeps.
# Seconds a whole multi-worker run may take before the test fails instead of hanging.
RUN_TIMEOUT = 240

optuna.logging.set_verbosity(optuna.logging.WARNING)


# Worker processes.


def _worker_env(sleep: float) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OPTUNA_FRACTAL_OBJECTIVE_SLEEP"] = str(sleep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def start_worker(
    url: str, study_name: str, n_trials: int, log: Path, *extra: str, sleep: float = 0.1
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "optuna_fractal.cli",
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
    with open(log, "ab") as output:
        return subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=_worker_env(sleep), cwd=REPO
        )


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optuna_fractal.cli", *args],
        capture_output=True,
        text=True,
        env=_worker_env(0),
        cwd=REPO,
        timeout=timeout,
    )


def _logs(paths: list[Path], lines: int = 15) -> str:
    parts = []
    for path in paths:
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
    return "\n".join(parts)


def wait_for(processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> list[int]:
    deadline = time.monotonic() + RUN_TIMEOUT
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            pytest.fail(f"Workers still running after {RUN_TIMEOUT} s.\n{_logs(logs)}")
    return codes


def run_workers(
    url: str, study_name: str, n_trials: int, tmp_path: Path, *extra: str, sleep: float = 0.1
) -> None:
    logs = [tmp_path / f"worker-{i}.log" for i in range(N_WORKERS)]
    workers = [start_worker(url, study_name, n_trials, log, *extra, sleep=sleep) for log in logs]
    codes = wait_for(workers, logs)
    assert codes == [0] * N_WORKERS, _logs(logs)


# Invariants.


def _record(trial: FrozenTrial) -> dict[str, Any] | None:
    raw = trial.system_attrs.get(DECISION_KEY)
    try:
        record = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("trial") != trial.number:
        return None
    return record if "role" in record and "node" in record else None


def check_partition_invariants(study: optuna.Study, n_trials: int, n_workers: int) -> None:
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}

    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) >= n_trials
    # Workers that pass the budget check in the same instant may each run one more trial.
    assert len(counted) <= n_trials + n_workers - 1

    running = [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert running == []

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for trial in complete:
        assert _record(trial) is not None, f"COMPLETE trial {trial.number} has no record"
    cells = [_record(t)["node"] for t in complete if _record(t)["role"] == "cell"]
    assert len(cells) == len(set(cells)), f"cells evaluated twice: {sorted(cells)}"
    params = [tuple(sorted(t.params.items())) for t in complete]
    assert len(params) == len(set(params)), "two COMPLETE trials evaluated the same point"

    claims: dict[str, list[FrozenTrial]] = defaultdict(list)
    for trial in trials:
        record = _record(trial)
        if record is not None and record["role"] == "cell":
            claims[record["node"]].append(trial)
    tree = get_tree(study)
    assert tree.nodes, "get_tree returned an empty tree"
    for node_id, claimers in claims.items():
        node = tree.node(node_id)
        winners = [t for t in claimers if t.state == TrialState.COMPLETE]
        n_failed = sum(1 for t in claimers if t.state == TrialState.FAIL)
        if winners:
            (winner,) = winners
            assert node.state == "complete", node
            assert node.value_source == "evaluated", node
            assert node.trial_number == winner.number, node
            for name, value in node.params.items():
                assert math.isclose(by_number[winner.number].params[name], value), node
        elif n_failed > MAX_RETRIES:
            assert node.state == "failed", node
        else:
            assert node.state == "open", node


# Storages.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_branin_study(url: str, study_name: str, **storage_kwargs: Any) -> optuna.Study:
    return optuna.load_study(study_name=study_name, storage=open_storage(url, **storage_kwargs))


def _delete_study(url: str, study_name: str) -> None:
    storage = open_storage(url)
    try:
        optuna.delete_study(study_name=study_name, storage=storage)
    except KeyError:
        pass


@pytest.fixture
def grpc_url(tmp_path: Path) -> Iterator[str]:
    pytest.importorskip("grpc", reason="grpcio is not installed")
    port = _free_port()
    script = (
        "import sys\n"
        "from optuna.storages import get_storage, run_grpc_proxy_server\n"
        "storage = get_storage(sys.argv[1])\n"
        "run_grpc_proxy_server(storage, host='127.0.0.1', port=int(sys.argv[2]))\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", script, f"sqlite:///{tmp_path}/grpc.db", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "grpc-server.log", "wb"),
        env=_worker_env(0),
    )
    try:
        yield f"grpc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def redis_journal_url(redis_url: str) -> Iterator[str]:
    import redis

    prefix = f"optuna-fractal-test-{uuid.uuid4().hex[:12]}"
    yield f"{redis_url}?prefix={prefix}"
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def _admin_engine(server_url: str) -> Any:
    import sqlalchemy

    return sqlalchemy.create_engine(
        server_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )


def fresh_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server of ``server_url``; drop it afterwards."""
    import sqlalchemy

    name = f"optuna_fractal_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine(server_url)
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    url = sqlalchemy.engine.make_url(server_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop = f"DROP DATABASE {name}"
        if engine.dialect.name == "postgresql":
            drop += " WITH (FORCE)"
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(drop))
        engine.dispose()


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    yield from fresh_database(postgres_url)


@pytest.fixture
def fresh_mysql_url(mysql_url: str) -> Iterator[str]:
    yield from fresh_database(mysql_url)


STORAGES = [
    pytest.param("sqlite_url", id="sqlite"),
    pytest.param("fresh_postgres_url", id="postgresql", marks=pytest.mark.server),
    pytest.param("fresh_mysql_url", id="mariadb", marks=pytest.mark.server),
    pytest.param("journal_url", id="journal-file"),
    pytest.param("redis_journal_url", id="journal-redis", marks=pytest.mark.server),
    pytest.param("grpc_url", id="grpc-proxy"),
]


@pytest.fixture
def journal_url(tmp_path: Path) -> str:
    return f"journal:{tmp_path}/journal.log"


# Eight workers on every storage.


@pytest.mark.parametrize("storage_fixture", STORAGES)
def test_eight_workers_never_share_a_cell(
    storage_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(storage_fixture)
    study_name = unique_study_name("workers")
    n_trials = 40
    run_workers(url, study_name, n_trials, tmp_path, "--seed", "1")

    study = load_branin_study(url, study_name)
    try:
        check_partition_invariants(study, n_trials, N_WORKERS)
    finally:
        _delete_study(url, study_name)


# Killed workers.


def run_with_kills(
    url: str,
    study_name: str,
    n_trials: int,
    tmp_path: Path,
    extra: list[str],
    n_kills: int,
    between_kills: Any = None,
) -> int:
    """Run workers, SIGKILL ``n_kills`` of them at random moments and start replacements."""
    rng = random.Random(0)
    logs: list[Path] = []
    workers: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        log = tmp_path / f"worker-{len(logs)}.log"
        logs.append(log)
        workers.append(start_worker(url, study_name, n_trials, log, *extra, sleep=0.4))

    for _ in range(N_WORKERS):
        start()
    storage = open_storage(url)
    study: optuna.Study | None = None
    while study is None:
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:
            time.sleep(0.2)
    # Kill only once the study is under way, and early enough that it goes on afterwards.
    while len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 4:
        time.sleep(0.1)
    killed = 0
    # Victims come from the first workers, which are past their start-up and so almost always
    # inside a trial; a replacement may still be importing Optuna.
    first_workers = list(workers)
    for _ in range(n_kills):
        time.sleep(rng.uniform(0.3, 1.0))
        alive = [w for w in first_workers if w.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        first_workers.remove(victim)
        os.kill(victim.pid, signal.SIGKILL)
        killed += 1
        start()
        if between_kills is not None:
            between_kills(study)

    stop_helper = threading.Event()
    helper = None
    if between_kills is not None:

        def keep_calling() -> None:
            while not stop_helper.wait(1.0):
                between_kills(study)

        helper = threading.Thread(target=keep_calling, daemon=True)
        helper.start()
    try:
        codes = wait_for(workers, logs)
    finally:
        stop_helper.set()
        if helper is not None:
            helper.join()
    assert codes.count(-signal.SIGKILL) == killed, _logs(logs)
    assert all(code in (0, -signal.SIGKILL) for code in codes), _logs(logs)
    return killed


@pytest.mark.server
def test_killed_workers_heartbeat_postgres(fresh_postgres_url: str, tmp_path: Path) -> None:
    url = fresh_postgres_url
    study_name = unique_study_name("kill-rdb")
    n_trials = 40
    # The sampler starts heartbeats before it waits for its turn, so a worker killed while it
    # samples is failed after the grace period too; the default decision timeout never fires.
    heartbeat = ["--heartbeat-interval", "1", "--grace-period", "2"]
    killed = run_with_kills(url, study_name, n_trials, tmp_path, heartbeat, n_kills=4)
    assert killed == 4

    study = load_branin_study(url, study_name, heartbeat_interval=1, grace_period=2)
    time.sleep(3)  # The grace period of the last killed trial.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    try:
        check_partition_invariants(study, n_trials, N_WORKERS)
        assert len(study.get_trials(states=(TrialState.FAIL,))) >= 1
    finally:
        _delete_study(url, study_name)


def test_killed_workers_fail_stale_journal(journal_url: str, tmp_path: Path) -> None:
    study_name = unique_study_name("kill-journal")
    n_trials = 40
    # Older than any live trial: the objective sleeps 0.4 s and a decision waits at most
    # the decision timeout for a dead predecessor.
    older_than = 8.0

    def fail_stale(study: optuna.Study) -> None:
        fail_stale_trials(study, older_than)

    killed = run_with_kills(
        journal_url,
        study_name,
        n_trials,
        tmp_path,
        ["--decision-timeout", "5"],
        n_kills=3,
        between_kills=fail_stale,
    )
    assert killed == 3

    time.sleep(older_than)
    result = run_cli(
        "fail-stale",
        "--storage",
        journal_url,
        "--study-name",
        study_name,
        "--older-than",
        str(older_than),
    )
    assert result.returncode == 0, result.stderr
    study = load_branin_study(journal_url, study_name)
    check_partition_invariants(study, n_trials, N_WORKERS)
    assert len(study.get_trials(states=(TrialState.FAIL,))) >= 1


# Eight processes against a fresh database.

_SETUP_SCRIPT = """
import sys, time
from optuna_fractal._storages import create_or_load_study, open_storage
url, study_name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
storage = open_storage(url)
create_or_load_study(storage, url, study_name, "minimize")
"""


def _concurrent_setup(url: str, tmp_path: Path, n_processes: int = 8) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    study_name = unique_study_name("setup")
    # Every process imports optuna first, then all start the setup at the same instant.
    start = time.time() + 4.0
    logs = [tmp_path / f"setup-{i}.log" for i in range(n_processes)]
    processes = []
    for log in logs:
        with open(log, "wb") as output:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", _SETUP_SCRIPT, url, study_name, str(start)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=_worker_env(0),
                    cwd=REPO,
                )
            )
    codes = wait_for(processes, logs)
    assert codes == [0] * n_processes, _logs(logs)
    summaries = optuna.get_all_study_summaries(open_storage(url))
    assert [s.study_name for s in summaries] == [study_name]


@pytest.mark.server
def test_concurrent_setup_fresh_postgres(postgres_url: str, tmp_path: Path) -> None:
    # One round collided in about one of three tries without the retry; two rounds make a
    # regression likely to show.
    for round_number in range(2):
        for url in fresh_database(postgres_url):
            _concurrent_setup(url, tmp_path / f"round-{round_number}")


@pytest.mark.server
def test_concurrent_setup_fresh_mariadb(mysql_url: str, tmp_path: Path) -> None:
    for url in fresh_database(mysql_url):
        _concurrent_setup(url, tmp_path)


# One process, several trials in flight.

SPACE = {"x": FloatDistribution(-5.0, 5.0), "n": IntDistribution(0, 20)}


def _centre_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    n = trial.suggest_int("n", 0, 20)
    time.sleep(0.01)
    return (x - 1.2) ** 2 + (n - 13) ** 2


def _cells(study: optuna.Study) -> list[str]:
    return [
        _record(t)["node"]
        for t in study.get_trials(deepcopy=False)
        if _record(t) is not None and _record(t)["role"] == "cell"
    ]


def test_two_asks_before_tell_differ() -> None:
    study = optuna.create_study(sampler=SOOSampler(search_space=SPACE))
    first = study.ask()
    second = study.ask()
    first_params = (first.suggest_float("x", -5, 5), first.suggest_int("n", 0, 20))
    second_params = (second.suggest_float("x", -5, 5), second.suggest_int("n", 0, 20))
    assert first_params != second_params
    cells = _cells(study)
    assert len(cells) == 2
    assert cells[0] != cells[1]


def test_four_threads_on_one_sampler_differ() -> None:
    study = optuna.create_study(sampler=SOOSampler(search_space=SPACE))
    study.optimize(_centre_objective, n_trials=40, n_jobs=4)
    check_partition_invariants(study, 40, 4)
    assert len(_cells(study)) == 40


def _optimize_with_pickled_sampler(url: str, study_name: str, payload: bytes) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = pickle.loads(payload)
    study = optuna.load_study(study_name=study_name, storage=url, sampler=sampler)
    study.optimize(_centre_objective, n_trials=8)


def test_pickled_sampler_in_processes_differ(sqlite_url: str) -> None:
    study_name = unique_study_name("pickled")
    sampler = SOOSampler(search_space=SPACE, seed=3)
    study = optuna.create_study(storage=sqlite_url, study_name=study_name, sampler=sampler)
    study.optimize(_centre_objective, n_trials=2)  # The sampler now has caches to pickle.
    payload = pickle.dumps(sampler)

    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_optimize_with_pickled_sampler, args=(sqlite_url, study_name, payload)
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=RUN_TIMEOUT)
    assert [p.exitcode for p in processes] == [0] * 4
    check_partition_invariants(study, 2 + 4 * 8, 1)
    assert len(_cells(study)) == 34


# Broken or foreign decision records.


def _full_record(trial: int, node: str) -> str:
    return json.dumps(
        {
            "v": 1,
            "trial": trial,
            "role": "cell",
            "node": node,
            "expanded": [],
            "scored": {},
            "cursor": None,
        }
    )


# Each entry maps the number of the trial that gets the attribute to the attribute.
_BROKEN_RECORDS = {
    "garbage JSON": lambda number: "{not json",
    "record of another trial": lambda number: _full_record(999, "r"),
    "wrong shape": lambda number: json.dumps({"v": 1, "trial": number, "role": "cell"}),
    "a list": lambda number: json.dumps(["r", "r.0"]),
    "unknown node": lambda number: _full_record(number, "r.7.7"),
    "unknown version": lambda number: json.dumps({"v": 99, "trial": number}),
}


def test_broken_records_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(sampler=SOOSampler(search_space=SPACE))
    study.optimize(_centre_objective, n_trials=3)
    for index, make_record in enumerate(_BROKEN_RECORDS.values()):
        trial = optuna.trial.create_trial(
            params={"x": 0.1 * index, "n": index},
            distributions=SPACE,
            value=100.0 + index,
            system_attrs={DECISION_KEY: make_record(3 + index)},
        )
        study.add_trial(trial)
    broken_numbers = {t.number for t in study.trials[3:]}
    assert broken_numbers == set(range(3, 3 + len(_BROKEN_RECORDS)))

    with caplog.at_level(logging.WARNING):
        study.optimize(_centre_objective, n_trials=20)

    warned = "\n".join(r.getMessage() for r in caplog.records)
    for number in (3, 5, 6, 7, 8):
        assert f"Skipping the decision record of trial {number}" in warned
    cells = [
        _record(t)["node"]
        for t in study.trials
        if t.number not in broken_numbers and _record(t) is not None
    ]
    assert len(cells) == len(set(cells)) == 23
    tree = get_tree(study)
    assert all(node.trial_number not in broken_numbers for node in tree.nodes)


def test_broken_record_on_running_trial_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(sampler=SOOSampler(search_space=SPACE, decision_timeout=600))
    study.optimize(_centre_objective, n_trials=2)
    # A RUNNING trial whose decision attribute another program overwrote with garbage.
    stuck = study.ask()
    study._storage.set_trial_system_attr(stuck._trial_id, DECISION_KEY, "{half-writ")

    with caplog.at_level(logging.WARNING):
        study.optimize(_centre_objective, n_trials=10)

    assert "Skipping the decision record" in "\n".join(r.getMessage() for r in caplog.records)
    cells = _cells(study)
    assert len(cells) == len(set(cells)) == 12
    assert study.trials[stuck.number].state == TrialState.RUNNING


def test_branin_objective_declares_space() -> None:
    assert set(branin.search_space) == {"x1", "x2"}
    assert math.isclose(branin.value(math.pi, 2.275), branin.f_opt, rel_tol=1e-6)


def test_get_tree_from_storage_alone(sqlite_url: str) -> None:
    # The dashboard and other processes load the study without the sampler that ran it.
    study = optuna.create_study(storage=sqlite_url, sampler=SOOSampler(search_space=SPACE))
    study.optimize(_centre_objective, n_trials=5)
    loaded = optuna.load_study(study_name=study.study_name, storage=sqlite_url)
    tree = get_tree(loaded)
    assert len(tree.nodes) >= 5
    assert tree.n_evaluated == 5


_BLOCKED_DECIDER = """
import sys, time
import optuna
from optuna_fractal import SOOSampler
from optuna_fractal._storages import open_storage
from optuna_fractal.testing_objectives import branin


class BlockedSOOSampler(SOOSampler):
    def _decide(self, study, trial):
        print("deciding", flush=True)
        time.sleep(3600)


storage = open_storage(sys.argv[1], heartbeat_interval=1, grace_period=2)
sampler = BlockedSOOSampler(search_space=branin.search_space)
study = optuna.load_study(study_name=sys.argv[2], storage=storage, sampler=sampler)
study.optimize(branin, n_trials=1)
"""


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_heartbeat_fails_worker_killed_while_sampling(sqlite_url: str) -> None:
    # A worker killed inside study.ask(), before its trial has a decision, must be failed by
    # the heartbeat like a worker killed in its objective, instead of blocking every later
    # trial for the whole decision_timeout.
    study_name = unique_study_name("ask-kill")
    storage = open_storage(sqlite_url, heartbeat_interval=1, grace_period=2)
    sampler = SOOSampler(search_space=branin.search_space, decision_timeout=600)
    study = optuna.create_study(storage=storage, study_name=study_name, sampler=sampler)
    study.optimize(branin, n_trials=2)

    blocked = subprocess.Popen(
        [sys.executable, "-c", _BLOCKED_DECIDER, sqlite_url, study_name],
        stdout=subprocess.PIPE,
        env=_worker_env(0),
        cwd=REPO,
    )
    try:
        assert blocked.stdout is not None
        assert blocked.stdout.readline().strip() == b"deciding"
    finally:
        blocked.kill()
        blocked.wait()
    dead = study.get_trials(states=(TrialState.RUNNING,))
    assert [t.number for t in dead] == [2]

    next_trials: list[optuna.Trial] = []
    thread = threading.Thread(target=lambda: next_trials.append(study.ask()), daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "study.ask() still waits for the killed worker's trial"
    assert study.trials[2].state == TrialState.FAIL
    assert next_trials[0].number == 3


def test_retry_callback_reclaims_failed_cell(sqlite_url: str) -> None:
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=1)
    storage = optuna.storages.RDBStorage(
        sqlite_url,
        heartbeat_interval=1,
        grace_period=1,
        heartbeat_stale_trial_callback=retry,
    )
    sampler = SOOSampler(search_space=SPACE)
    study = optuna.create_study(storage=storage, sampler=sampler)
    study.optimize(_centre_objective, n_trials=3)

    # A worker that claimed a cell, sent one heartbeat and died.
    with pytest.warns(UserWarning, match="Heartbeat"):
        abandoned = study.ask()
    abandoned.suggest_float("x", -5.0, 5.0)
    abandoned.suggest_int("n", 0, 20)
    storage.record_heartbeat(abandoned._trial_id)
    cell = _record(study.trials[abandoned.number])["node"]
    time.sleep(2.5)

    study.optimize(_centre_objective, n_trials=5)

    trials = study.get_trials(deepcopy=False)
    assert trials[abandoned.number].state == TrialState.FAIL
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == abandoned.number]
    assert retry.state == TrialState.COMPLETE
    assert _record(retry)["node"] == cell
    assert retry.params == trials[abandoned.number].params
    check_partition_invariants(study, 8, 1)
