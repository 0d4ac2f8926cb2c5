"""Tests of save_to_dashboard and DashboardCallback against real SQLite studies."""

from __future__ import annotations

from collections.abc import Iterator
import inspect
import json
import logging
import math
import re
import textwrap

import optuna
from optuna_dashboard import get_note
from optuna_dashboard import save_note
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects
import pytest

from optuna_fractal import get_tree
from optuna_fractal import SOOSampler
from optuna_fractal.visualization import DashboardCallback
from optuna_fractal.visualization import save_to_dashboard
from optuna_fractal.visualization import summary_markdown
from optuna_fractal.visualization._dashboard import merge_note
from optuna_fractal.visualization._dashboard import NOTE_BEGIN
from optuna_fractal.visualization._dashboard import NOTE_END
from optuna_fractal.visualization._dashboard import PARTITION_FIGURE_ID
from optuna_fractal.visualization._dashboard import TREE_FIGURE_ID


def branin(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 10.0)
    y = trial.suggest_float("y", 0.0, 15.0)
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


@pytest.fixture
def study(sqlite_url: str, quiet_optuna: None) -> optuna.Study:
    return optuna.create_study(study_name="branin", storage=sqlite_url, sampler=SOOSampler())


@pytest.fixture
def optuna_propagating() -> Iterator[None]:
    optuna.logging.enable_propagation()
    yield
    optuna.logging.disable_propagation()


def saved_figures(study: optuna.Study) -> dict[str, dict]:
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {key: json.loads(value) for key, value in get_plotly_graph_objects(attrs).items()}


def test_save_to_dashboard_stores_both_figures(study: optuna.Study) -> None:
    study.optimize(branin, n_trials=25)
    save_to_dashboard(study)

    figures = saved_figures(study)
    assert set(figures) == {PARTITION_FIGURE_ID, TREE_FIGURE_ID}
    tree = get_tree(study)
    partition = figures[PARTITION_FIGURE_ID]
    cells = [t for t in partition["data"] if t.get("legendgroup", "").startswith("cell-")]
    assert len(cells) == len(tree.leaves())
    assert partition["layout"]["title"]["text"].startswith("SOO partition")
    nodes = [
        t for t in figures[TREE_FIGURE_ID]["data"] if t.get("meta", {}).get("role") == "nodes"
    ]
    assert sum(len(t["x"]) for t in nodes) == len(tree.nodes)


def test_save_to_dashboard_writes_summary_note(study: optuna.Study) -> None:
    study.optimize(branin, n_trials=25)
    study.ask()
    save_to_dashboard(study)

    tree = get_tree(study)
    note = get_note(study)
    assert note.startswith(NOTE_BEGIN)
    assert note.rstrip().endswith(NOTE_END)
    assert "### Partition tree" in note
    assert f"| Evaluations | {tree.n_evaluated} |" in note
    assert f"| Inherited values (no trial needed) | {tree.n_inherited} |" in note
    assert "| GP-scored (evaluations saved) | 0 |" in note
    assert "| Running nodes | 1 |" in note
    assert "| Trials | 26 in all, 25 complete, 1 running |" in note
    assert f"| Nodes | {len(tree.nodes)} ({len(tree.leaves())} leaves) |" in note
    best = study.best_trial
    assert f"trial {best.number}): value **{best.value:.6g}**" in note


def test_save_to_dashboard_keeps_user_note(study: optuna.Study) -> None:
    save_note(study, "Run on node gpu-07.\n\nCheck the learning rate.")
    study.optimize(branin, n_trials=10)
    save_to_dashboard(study)
    study.optimize(branin, n_trials=5)
    save_to_dashboard(study)

    note = get_note(study)
    assert note.startswith("Run on node gpu-07.\n\nCheck the learning rate.\n\n")
    assert note.count("### Partition tree") == 1
    assert "| Evaluations | 15 |" in note


def test_merge_note_replaces_only_the_summary() -> None:
    first = merge_note("", "### Partition tree\nold")
    edited = "Before.\n\n" + first + "\nAfter."
    merged = merge_note(edited, "### Partition tree\nnew")

    assert merged == f"Before.\n\n{NOTE_BEGIN}\n\n### Partition tree\nnew\n\n{NOTE_END}\n\nAfter."


def test_summary_markdown_names_best_cell(quiet_optuna: None) -> None:
    study = optuna.create_study(direction="maximize", sampler=SOOSampler())
    study.optimize(lambda trial: -branin(trial), n_trials=20)
    tree = get_tree(study)
    summary = summary_markdown(tree)

    best = max((n for n in tree.nodes if n.value_source == "evaluated"), key=lambda n: n.value)
    assert f"**Best cell** `{best.id}`" in summary
    assert "| Sampler | SOO, k = 3, maximize |" in summary
    low, high = best.bounds["x"]
    assert f"| x | {best.params['x']:.4g} | [{low:.4g}, {high:.4g}] |" in summary


def test_save_to_dashboard_without_tree_raises(study: optuna.Study) -> None:
    with pytest.raises(ValueError, match="no partition tree yet"):
        save_to_dashboard(study)


def test_callback_refreshes_every_n_trials(study: optuna.Study) -> None:
    refreshed_at: list[int] = []

    def record_refresh(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if PARTITION_FIGURE_ID in saved_figures(study) and not refreshed_at:
            refreshed_at.append(trial.number)

    study.optimize(branin, n_trials=4, callbacks=[DashboardCallback(every_n_trials=5)])
    assert saved_figures(study) == {}

    study.optimize(
        branin, n_trials=8, callbacks=[DashboardCallback(every_n_trials=5), record_refresh]
    )
    # Trial 4 is the fifth trial: the callback refreshes right after it.
    assert refreshed_at == [4]
    assert "| Evaluations | 10 |" in get_note(study)  # Refreshed again after trial 9.

    study.optimize(branin, n_trials=3, callbacks=[DashboardCallback(every_n_trials=5)])
    # Trial 14 is the fifteenth: the figures show 15 evaluations.
    assert "| Evaluations | 15 |" in get_note(study)
    partition = saved_figures(study)[PARTITION_FIGURE_ID]
    assert ", 15 evaluations" in partition["layout"]["title"]["text"]


def test_callback_logs_failure_and_continues(
    study: optuna.Study, optuna_propagating: None, caplog: pytest.LogCaptureFixture
) -> None:
    callback = DashboardCallback(every_n_trials=2, params=("x", "nope"))
    with caplog.at_level(logging.WARNING, logger="optuna_fractal"):
        study.optimize(branin, n_trials=4, callbacks=[callback])

    assert len(study.trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    messages = [r.getMessage() for r in caplog.records if "Could not refresh" in r.getMessage()]
    assert len(messages) == 2
    assert "after trial 1" in messages[0]
    assert "unknown parameter(s) ['nope']" in messages[0]
    assert saved_figures(study) == {}


@pytest.mark.parametrize("every", [0, -3, 2.5, True, "10"])
def test_callback_rejects_invalid_interval(every: object) -> None:
    with pytest.raises(ValueError, match="every_n_trials must be an integer >= 1"):
        DashboardCallback(every_n_trials=every)  # type: ignore[arg-type]


@pytest.mark.parametrize("function", [save_to_dashboard, DashboardCallback, summary_markdown])
def test_docstring_example_runs(
    function, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, quiet_optuna: None
) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", inspect.getdoc(function) or "", flags=re.S)
    assert len(blocks) == 1
    exec(compile(textwrap.dedent(blocks[0]), f"<{function.__name__} example>", "exec"), {})
    if function is not summary_markdown:
        study = optuna.load_study(study_name=None, storage="sqlite:///soo.db")
        assert PARTITION_FIGURE_ID in saved_figures(study)
