"""optuna-dashboard shows a SOO study's trials and partition figure in headless Chromium.

The test runs optuna-dashboard on 127.0.0.1 against a SQLite study and drives Debian's
``chromium`` package with Playwright. It fails, never skips, when Chromium is missing. Set
``OPTUNA_FRACTAL_SCREENSHOT_DIR`` (``docs/img`` for the documentation) to keep the screenshots;
by default they go to the test's temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import math
import os
from pathlib import Path
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import optuna
import pytest

from optuna_fractal import get_tree
from optuna_fractal import SOOSampler
from optuna_fractal.visualization import DashboardCallback
from optuna_fractal.visualization import save_to_dashboard
from optuna_fractal.visualization._dashboard import PARTITION_FIGURE_ID
from optuna_fractal.visualization._dashboard import TREE_FIGURE_ID


pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = Path(os.environ.get("OPTUNA_FRACTAL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# optuna-dashboard 0.21 takes about 5 s to accept connections on a loaded machine.
STARTUP_TIMEOUT_S = 60.0
N_TRIALS = 40


def branin(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 10.0)
    y = trial.suggest_float("y", 0.0, 15.0)
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dashboard_command(storage_url: str, port: int) -> list[str]:
    script = Path(sys.executable).parent / "optuna-dashboard"
    args = ["--host", "127.0.0.1", "--port", str(port), storage_url]
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from optuna_dashboard._cli import main; main()", *args]


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}. Install Debian's package with "
            "`apt-get install -y chromium` (or point OPTUNA_FRACTAL_CHROMIUM at a Chromium "
            'binary), or deselect browser tests with -m "not browser". Do not run '
            "`playwright install`."
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("OPTUNA_FRACTAL_SCREENSHOT_DIR")
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def dashboard_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[optuna.Study, str]:
    """A SOO study on Branin with the dashboard figures saved, and one trial still running."""
    path = tmp_path_factory.mktemp("dashboard") / "branin.db"
    url = f"sqlite:///{path}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="branin-soo", storage=url, sampler=SOOSampler())
    study.optimize(branin, n_trials=N_TRIALS, callbacks=[DashboardCallback(every_n_trials=10)])
    study.ask()
    save_to_dashboard(study)
    return study, url


@contextlib.contextmanager
def running_dashboard(storage_url: str, log_path: Path) -> Iterator[str]:
    """Run optuna-dashboard on a free loopback port; yield its base URL once it responds."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            dashboard_command(storage_url, port), stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"optuna-dashboard exited with code {process.returncode}: "
                    f"{log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"optuna-dashboard did not accept connections on {base} within "
                    f"{STARTUP_TIMEOUT_S:.0f} s: {log_path.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def dashboard(
    dashboard_study: tuple[optuna.Study, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    _, storage_url = dashboard_study
    log_path = tmp_path_factory.mktemp("dashboard-log") / "dashboard.log"
    with running_dashboard(storage_url, log_path) as base:
        yield base


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright's Python client is missing: install the test extra "
            "(`pip install -e .[test]`). It drives the system Chromium; do not run "
            "`playwright install`."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def test_dashboard_lists_the_study(
    dashboard: str, dashboard_study: tuple[optuna.Study, str]
) -> None:
    study, _ = dashboard_study
    with urllib.request.urlopen(f"{dashboard}/api/studies", timeout=10) as response:
        body = response.read().decode()

    assert '"study_name": "branin-soo"' in body
    assert f'"study_id": {study._study_id}' in body


def test_dashboard_shows_partition_figure(
    browser, dashboard: str, dashboard_study: tuple[optuna.Study, str], screenshot_dir: Path
) -> None:
    study, _ = dashboard_study
    tree = get_tree(study)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{dashboard}/dashboard/studies/{study._study_id}")
        partition = page.locator(f'[id="user-defined-plot:{PARTITION_FIGURE_ID}"]')
        partition.locator(".main-svg").first.wait_for(timeout=60_000)
        page.locator(f'[id="user-defined-plot:{TREE_FIGURE_ID}"] .main-svg').first.wait_for(
            timeout=60_000
        )
        plot_ids = page.eval_on_selector_all(".js-plotly-plot", "els => els.map(e => e.id)")
        assert f"user-defined-plot:{PARTITION_FIGURE_ID}" in plot_ids
        assert f"user-defined-plot:{TREE_FIGURE_ID}" in plot_ids

        # One filled path per cell in the plot area (legend symbols live elsewhere).
        n_cells = partition.locator("g.cartesianlayer path.js-fill").count()
        assert n_cells == len(tree.leaves())
        title = partition.locator(".gtitle").text_content()
        assert (
            title == f"SOO partition: {len(tree.leaves())} cells, {tree.n_evaluated} evaluations"
        )
        legend = partition.locator("g.legend").text_content()
        assert "running cell" in legend
        assert "best evaluation" in legend

        # The study's own trials: the best-trial card and the history plot.
        best = study.best_trial
        page.get_by_text(f"Best Trial (number={best.number})").wait_for(timeout=30_000)
        history_points = page.locator('[id="plot-history"] g.cartesianlayer path.point')
        assert history_points.count() >= N_TRIALS

        page.wait_for_timeout(500)  # Let plotly finish its transitions before the screenshot.
        page.screenshot(path=str(screenshot_dir / "dashboard-study.png"), full_page=True)
        partition.screenshot(path=str(screenshot_dir / "dashboard-partition.png"))
    finally:
        page.close()
    assert (screenshot_dir / "dashboard-study.png").stat().st_size > 10_000


def test_dashboard_lists_trials_and_summary(
    browser, dashboard: str, dashboard_study: tuple[optuna.Study, str], screenshot_dir: Path
) -> None:
    study, _ = dashboard_study
    tree = get_tree(study)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{dashboard}/dashboard/studies/{study._study_id}/trials")
        # The list counts every trial, the running one included, and opens the first.
        page.get_by_text(f"{N_TRIALS + 1} Trials").wait_for(timeout=60_000)
        text = page.inner_text("body")
        assert "Trial 0 (trial_id=" in text
        assert str(study.trials[0].value) in text

        page.goto(f"{dashboard}/dashboard/studies/{study._study_id}/note")
        page.get_by_text("Partition tree").wait_for(timeout=60_000)
        text = page.inner_text("body")
        assert f"Evaluations\t{tree.n_evaluated}" in text
        assert "Running nodes\t1" in text
        assert f"Trials\t{N_TRIALS + 1} in all, {N_TRIALS} complete, 1 running" in text
        assert "optuna-fractal-summary" not in text  # The markers stay invisible.
        page.screenshot(path=str(screenshot_dir / "dashboard-note.png"))
    finally:
        page.close()


@pytest.mark.slow
def test_dashboard_shows_lora_study(
    browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, screenshot_dir: Path
) -> None:
    """Three trials of the LoRA objective (cpu-tiny config) under SOO, seen in the dashboard.

    Building the tiny base model takes about 150 s on one core the first time. Set
    OPTUNA_FRACTAL_CACHE to a folder that outlives the run to build it only once.
    """
    from optuna_fractal_objectives import build_objective
    from optuna_fractal_objectives import config_path

    if not os.environ.get("OPTUNA_FRACTAL_CACHE"):
        monkeypatch.setenv("OPTUNA_FRACTAL_CACHE", str(tmp_path / "cache"))
    objective = build_objective(config_path("cpu-tiny"))
    storage_url = f"sqlite:///{tmp_path / 'lora.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="lora-cpu-tiny",
        storage=storage_url,
        direction=objective.direction,
        sampler=SOOSampler(search_space=objective.search_space),
    )
    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    save_to_dashboard(study, params=("learning_rate", "lora_r"))
    tree = get_tree(study)

    with running_dashboard(storage_url, tmp_path / "dashboard.log") as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{base}/dashboard/studies/{study._study_id}")
            partition = page.locator(f'[id="user-defined-plot:{PARTITION_FIGURE_ID}"]')
            partition.locator(".main-svg").first.wait_for(timeout=60_000)
            assert partition.locator("g.cartesianlayer path.js-fill").count() == len(tree.leaves())
            assert partition.locator(".xtitle").text_content() == "learning_rate (log)"
            assert partition.locator(".ytitle").text_content() == "lora_r"
            best = study.best_trial
            page.get_by_text(f"Best Trial (number={best.number})").wait_for(timeout=30_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(screenshot_dir / "dashboard-lora.png"), full_page=True)
        finally:
            page.close()
