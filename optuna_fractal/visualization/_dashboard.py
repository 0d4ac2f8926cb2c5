"""Saving the partition plots and a tree summary into a study, for optuna-dashboard.

optuna-dashboard (0.13 and later) shows every plotly figure saved with
``optuna_dashboard.save_plotly_graph_object`` on the study page, and renders the study note
saved with ``optuna_dashboard.save_note`` as Markdown. Both live in the study's system
attributes, so they reach the dashboard through any storage it can read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
import datetime
import re
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_fractal._view import get_tree
from optuna_fractal._view import NodeView
from optuna_fractal._view import TreeView
from optuna_fractal.visualization._partition import plot_partition
from optuna_fractal.visualization._tree import plot_tree
from optuna_fractal.visualization._utils import best_node
from optuna_fractal.visualization._utils import format_value
from optuna_fractal.visualization._utils import resolve_tree
from optuna_fractal.visualization._utils import sampler_label


if TYPE_CHECKING:
    from types import ModuleType

    from optuna.study import Study


_logger = optuna.logging.get_logger(__name__)

# Ids of the saved figures: each save overwrites the previous figure of the same id.
PARTITION_FIGURE_ID = "optuna-fractal-partition"
TREE_FIGURE_ID = "optuna-fractal-tree"

# Markdown link reference definitions render as nothing, so they can delimit the summary in
# the study note invisibly. Text outside the markers (a note written in the dashboard) is kept.
NOTE_BEGIN = "[optuna-fractal-summary-begin]: #"
NOTE_END = "[optuna-fractal-summary-end]: #"
_SUMMARY_PATTERN = re.compile(re.escape(NOTE_BEGIN) + r".*?" + re.escape(NOTE_END), re.DOTALL)


def _import_dashboard(function_name: str) -> ModuleType:
    try:
        import optuna_dashboard
    except ImportError as error:
        raise ImportError(
            f"{function_name} needs optuna-dashboard. Install it with `pip install "
            "optuna-fractal[dashboard]` (or `pip install optuna-dashboard plotly`)."
        ) from error
    return optuna_dashboard


def _cell_text(node: NodeView, name: str) -> str:
    if name in node.choices:
        return "{" + ", ".join(str(choice) for choice in node.choices[name]) + "}"
    low, high = node.bounds[name]
    if low == high:
        return format_value(low)
    return f"[{format_value(low)}, {format_value(high)}]"


def summary_markdown(tree: TreeView, trials: Sequence[FrozenTrial] | None = None) -> str:
    """Summarise a partition tree as Markdown: node counts, evaluations saved, the best cell.

    Node counts are per cell of the tree: a failed node is a cell whose every allowed attempt
    failed, and a running node a cell whose trial has not finished.

    Example:
        ```python
        import optuna
        from optuna_fractal import SOOSampler, get_tree
        from optuna_fractal.visualization import summary_markdown

        study = optuna.create_study(sampler=SOOSampler())
        study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=20)
        print(summary_markdown(get_tree(study)))
        ```

    Args:
        tree: The tree, from :func:`~optuna_fractal.get_tree`.
        trials: The study's trials, counted by state in a first row. Defaults to ``None``
            (no trial row).

    Returns:
        The summary, headed ``### Partition tree`` and ending with the time it was written.
    """
    states = [node.state for node in tree.nodes]
    n_open = sum(1 for node in tree.nodes if node.state == "open" and node.value is None)
    leaves = tree.leaves()
    rows = []
    if trials is not None:
        rows.append(("Trials", _trial_counts(trials)))
    rows += [
        ("Sampler", f"{sampler_label(tree)}, k = {tree.k}, {_direction_name(tree)}"),
        ("Nodes", f"{len(tree.nodes)} ({len(leaves)} leaves)"),
        ("Maximum depth", str(tree.max_depth)),
        ("Evaluations", str(tree.n_evaluated)),
        ("Inherited values (no trial needed)", str(tree.n_inherited)),
        ("GP-scored (evaluations saved)", str(tree.n_gp_scored)),
        ("Failed nodes", str(states.count("failed"))),
        ("Running nodes", str(states.count("running"))),
        ("Open nodes", str(n_open)),
    ]
    lines = ["### Partition tree", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]

    best = best_node(tree)
    lines.append("")
    if best is None:
        lines.append("No cell has been evaluated yet.")
    else:
        assert best.value is not None
        trial = f", trial {best.trial_number}" if best.trial_number is not None else ""
        lines += [
            f"**Best cell** `{best.id}` (depth {best.depth}{trial}): value **{best.value:.6g}**",
            "",
            "| Parameter | Centre | Cell |",
            "|---|---|---|",
        ]
        for name in tree.search_space:
            centre = format_value(best.params[name]) if name in best.params else ""
            lines.append(f"| {name} | {centre} | {_cell_text(best, name)} |")

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines += ["", f"_Updated by optuna-fractal, {stamp}._"]
    return "\n".join(lines)


def _trial_counts(trials: Sequence[FrozenTrial]) -> str:
    counts = Counter(trial.state for trial in trials)
    parts = [f"{len(trials)} in all"]
    parts += [
        f"{counts[state]} {state.name.lower()}"
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
        if counts[state]
    ]
    return ", ".join(parts)


def _direction_name(tree: TreeView) -> str:
    return "maximize" if tree.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"


def merge_note(note: str, summary: str) -> str:
    """Put ``summary`` between the markers in ``note``, keeping the rest of the note.

    A note without the markers gets the summary appended after its text.
    """
    block = f"{NOTE_BEGIN}\n\n{summary}\n\n{NOTE_END}"
    if _SUMMARY_PATTERN.search(note):
        return _SUMMARY_PATTERN.sub(lambda _: block, note, count=1)
    if note.strip():
        return f"{note.rstrip()}\n\n{block}\n"
    return f"{block}\n"


def save_to_dashboard(study: Study, *, params: Sequence[str] | str | None = None) -> None:
    """Save the partition plot, the tree plot and a tree summary into a study for the dashboard.

    optuna-dashboard shows the two plotly figures on the study page, and the summary in the
    study note (node counts, evaluations, inherited and GP-scored nodes, failed and running
    nodes, and the best cell). Each call replaces the figures and the summary saved before.
    Text that someone wrote in the study note outside the summary is kept.

    Both figures are stored as JSON in the study's system attributes, in pieces of about
    2 KB, so a save writes one attribute per piece. Trees of a few hundred nodes make
    figures of some hundred kilobytes.

    Example:
        ```python
        import optuna
        from optuna_fractal import SOOSampler
        from optuna_fractal.visualization import save_to_dashboard

        study = optuna.create_study(storage="sqlite:///soo.db", sampler=SOOSampler())
        study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=30)
        save_to_dashboard(study)
        # Then: optuna-dashboard --host 127.0.0.1 --port 8080 sqlite:///soo.db
        ```

    Args:
        study: A study run by :class:`~optuna_fractal.SOOSampler` or
            :class:`~optuna_fractal.BaMSOOSampler`.
        params: The parameters of the partition plot, as in
            :func:`~optuna_fractal.visualization.plot_partition`. Defaults to ``None``: the
            first two parameters.

    Raises:
        ValueError: If the study has no tree yet or ``params`` is invalid.
        ImportError: If optuna-dashboard or plotly is not installed.
    """
    dashboard = _import_dashboard("save_to_dashboard")
    tree = resolve_tree(get_tree(study), "save_to_dashboard")
    partition = plot_partition(tree, params)
    tree_figure = plot_tree(tree)
    dashboard.save_plotly_graph_object(study, partition, graph_object_id=PARTITION_FIGURE_ID)
    dashboard.save_plotly_graph_object(study, tree_figure, graph_object_id=TREE_FIGURE_ID)
    note = dashboard.get_note(study)
    summary = summary_markdown(tree, study.get_trials(deepcopy=False))
    dashboard.save_note(study, merge_note(note, summary))


class DashboardCallback:
    """Refresh the dashboard figures and summary every ``every_n_trials`` trials.

    Pass it to :meth:`optuna.study.Study.optimize`. After trial number ``n`` finishes (in any
    state), the worker that ran it calls :func:`save_to_dashboard` if ``n + 1`` is a multiple
    of ``every_n_trials``. Trial numbers are unique across workers, so among many workers
    sharing a storage exactly one refreshes per block of trials. The refresh runs after the
    trial's result is stored, so it delays the worker's next trial but never the trial itself
    or its result. A refresh that fails is logged as a warning and never stops the
    optimization.

    Example:
        ```python
        import optuna
        from optuna_fractal import SOOSampler
        from optuna_fractal.visualization import DashboardCallback

        study = optuna.create_study(storage="sqlite:///soo.db", sampler=SOOSampler())
        study.optimize(
            lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2,
            n_trials=30,
            callbacks=[DashboardCallback(every_n_trials=10)],
        )
        ```

    Args:
        every_n_trials: Refresh after every this many trials; an integer of at least 1.
            Defaults to 10.
        params: The parameters of the partition plot, as in
            :func:`~optuna_fractal.visualization.plot_partition`. Defaults to ``None``: the
            first two parameters.

    Raises:
        ValueError: If ``every_n_trials`` is not a positive integer.
        ImportError: If optuna-dashboard or plotly is not installed.
    """

    def __init__(
        self, every_n_trials: int = 10, *, params: Sequence[str] | str | None = None
    ) -> None:
        if (
            isinstance(every_n_trials, bool)
            or not isinstance(every_n_trials, int)
            or every_n_trials < 1
        ):
            raise ValueError(
                f"every_n_trials must be an integer >= 1, got {every_n_trials!r}. Use e.g. 10 "
                "to refresh the dashboard after every 10 trials."
            )
        _import_dashboard("DashboardCallback")
        from optuna_fractal.visualization._utils import import_plotly

        import_plotly("DashboardCallback")
        self.every_n_trials = every_n_trials
        self.params = params

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        if (trial.number + 1) % self.every_n_trials != 0:
            return
        try:
            save_to_dashboard(study, params=self.params)
        except Exception as error:  # noqa: BLE001 - a failed refresh must not stop optimize().
            _logger.warning(
                f"Could not refresh the dashboard figures of study {study.study_name!r} after "
                f"trial {trial.number}: {type(error).__name__}: {error}. The optimization "
                f"goes on; the next refresh is after trial {trial.number + self.every_n_trials}."
            )

    def __repr__(self) -> str:
        return f"DashboardCallback(every_n_trials={self.every_n_trials}, params={self.params!r})"
