"""Tests of the partition and tree plots, plotly and matplotlib, on real SOO studies.

GP-scored, failed and running nodes are made by editing a real tree's views (frozen
dataclasses), so that their geometry is the one a real study produces.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import subprocess
import sys
import textwrap


os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib
from matplotlib.colors import to_hex
import matplotlib.pyplot as plt
import optuna
from optuna.samplers import RandomSampler
from plotly.colors import sample_colorscale
import pytest

from optuna_fractal import get_tree
from optuna_fractal import SOOSampler
from optuna_fractal import TreeView
from optuna_fractal.visualization import plot_partition
from optuna_fractal.visualization import plot_tree
from optuna_fractal.visualization.matplotlib import plot_partition as mpl_plot_partition
from optuna_fractal.visualization.matplotlib import plot_tree as mpl_plot_tree


BEST_COLOUR = sample_colorscale("Viridis", [1.0])[0]  # Bright yellow: the best value.
WORST_COLOUR = sample_colorscale("Viridis", [0.0])[0]  # Dark purple.


def objective_2d(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    return (x - 1.3) ** 2 + (math.log10(lr) + 3.2) ** 2


def objective_5d(trial: optuna.Trial) -> float:
    a = trial.suggest_float("a", -2.0, 2.0)
    b = trial.suggest_float("b", 0.0, 1.0)
    c = trial.suggest_categorical("c", ["relu", "gelu", "silu"])
    n = trial.suggest_int("n", 1, 8)
    w = trial.suggest_float("w", 1e-4, 1.0, log=True)
    penalty = {"relu": 0.5, "gelu": 0.0, "silu": 1.0}[c]
    return (a - 0.7) ** 2 + (b - 0.2) ** 2 + penalty + 0.1 * abs(n - 5) + abs(math.log10(w) + 2)


@pytest.fixture(scope="module")
def study_2d(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    path = tmp_path_factory.mktemp("viz") / "study_2d.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{path}", sampler=SOOSampler())
    study.optimize(objective_2d, n_trials=30)
    return study


@pytest.fixture(scope="module")
def study_5d() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=SOOSampler())
    study.optimize(objective_5d, n_trials=60)
    study.ask()  # Leaves one node running.
    return study


@pytest.fixture(scope="module")
def mixed_tree(study_2d: optuna.Study) -> TreeView:
    """The 2-D tree with two leaves GP-scored, one running, one open and one failed."""
    tree = get_tree(study_2d)
    leaves = [node for node in tree.leaves() if node.value_source == "evaluated"]
    worst_first = sorted(leaves, key=lambda node: -node.value)
    gp_ids = {worst_first[0].id, worst_first[1].id}
    running_id, open_id, failed_id = (node.id for node in worst_first[2:5])
    nodes = []
    for node in tree.nodes:
        if node.id in gp_ids:
            node = dataclasses.replace(node, value=node.value + 1.0, value_source="gp")
        elif node.id == running_id:
            node = dataclasses.replace(node, value=None, value_source=None, state="running")
        elif node.id == open_id:
            node = dataclasses.replace(node, value=None, value_source=None, state="open")
        elif node.id == failed_id:
            node = dataclasses.replace(node, value=None, value_source=None, state="failed")
        nodes.append(node)
    return dataclasses.replace(tree, nodes=tuple(nodes), sampler="bamsoo")


def cell_traces(figure, kind: str | None = None) -> list:
    return [
        trace
        for trace in figure.data
        if trace.fill == "toself"
        and (trace.legendgroup or "").startswith("cell-")
        and (kind is None or trace.legendgroup == f"cell-{kind}")
    ]


def traces_with_role(figure, role: str, kind: str | None = None) -> list:
    return [
        trace
        for trace in figure.data
        if trace.meta
        and trace.meta.get("role") == role
        and (kind is None or trace.meta.get("kind") == kind)
    ]


def cell_node_id(trace) -> str:
    return trace.text.split("<br>")[0].split()[1]


# plot_partition (plotly)


def test_partition_2d_draws_one_rectangle_per_leaf(study_2d: optuna.Study) -> None:
    tree = get_tree(study_2d)
    figure = plot_partition(study_2d)

    cells = cell_traces(figure)
    assert len(cells) == len(tree.leaves())
    assert {cell_node_id(trace) for trace in cells} == {node.id for node in tree.leaves()}
    for trace in cells:
        node = tree.node(cell_node_id(trace))
        x0, x1 = node.unit_bounds["lr"]
        y0, y1 = node.unit_bounds["x"]
        assert list(trace.x) == pytest.approx([x0, x1, x1, x0, x0], abs=1e-8)
        assert list(trace.y) == pytest.approx([y0, y0, y1, y1, y0], abs=1e-8)


def test_partition_2d_axes_in_parameter_values(study_2d: optuna.Study) -> None:
    figure = plot_partition(study_2d)

    # Default parameters: the first two by name.
    assert figure.layout.xaxis.title.text == "lr (log)"
    assert figure.layout.yaxis.title.text == "x"
    assert list(figure.layout.xaxis.ticktext) == ["1e-05", "0.0001", "0.001", "0.01", "0.1"]
    assert list(figure.layout.xaxis.tickvals) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert list(figure.layout.yaxis.ticktext) == ["-5", "-2.5", "0", "2.5", "5"]
    assert list(figure.layout.xaxis.range) == [0.0, 1.0]
    assert list(figure.layout.yaxis.range) == [0.0, 1.0]


def test_partition_2d_params_swap_axes(study_2d: optuna.Study) -> None:
    figure = plot_partition(study_2d, params=("x", "lr"))

    assert figure.layout.xaxis.title.text == "x"
    assert figure.layout.yaxis.title.text == "lr (log)"


def test_partition_2d_centres_and_best(study_2d: optuna.Study) -> None:
    tree = get_tree(study_2d)
    figure = plot_partition(study_2d)

    (centres,) = traces_with_role(figure, "centres", "evaluated")
    assert len(centres.x) == tree.n_evaluated
    assert centres.marker.symbol == "circle"
    assert centres.marker.showscale is True

    (best,) = traces_with_role(figure, "best")
    assert best.marker.symbol == "star"
    assert (
        best.meta["node"]
        == min(
            (node for node in tree.nodes if node.value_source == "evaluated"),
            key=lambda node: node.value,
        ).id
    )
    assert best.x[0] == pytest.approx(math.log10(study_2d.best_params["lr"] / 1e-5) / 4)


def test_partition_colour_best_is_bright_when_minimizing(study_2d: optuna.Study) -> None:
    tree = get_tree(study_2d)
    figure = plot_partition(study_2d)
    cells = {cell_node_id(trace): trace for trace in cell_traces(figure)}
    leaves = [node for node in tree.leaves() if node.value is not None]

    best_leaf = min(leaves, key=lambda node: node.value)
    worst_leaf = max(leaves, key=lambda node: node.value)
    assert cells[best_leaf.id].fillcolor == BEST_COLOUR
    assert cells[worst_leaf.id].fillcolor == WORST_COLOUR
    # The best cell is drawn last among the cells with a value, so it is on top.
    valued = [
        cell_node_id(t)
        for t in cell_traces(figure)
        if t.legendgroup in ("cell-evaluated", "cell-inherited")
    ]
    assert valued[-1] == best_leaf.id
    (centres,) = traces_with_role(figure, "centres", "evaluated")
    assert centres.marker.reversescale is True


def test_partition_colour_best_is_bright_when_maximizing() -> None:
    study = optuna.create_study(direction="maximize", sampler=SOOSampler())
    study.optimize(lambda trial: -objective_2d(trial), n_trials=30)
    tree = get_tree(study)
    figure = plot_partition(study)
    cells = {cell_node_id(trace): trace for trace in cell_traces(figure)}
    leaves = [node for node in tree.leaves() if node.value is not None]

    best_leaf = max(leaves, key=lambda node: node.value)
    worst_leaf = min(leaves, key=lambda node: node.value)
    assert cells[best_leaf.id].fillcolor == BEST_COLOUR
    assert cells[worst_leaf.id].fillcolor == WORST_COLOUR
    (centres,) = traces_with_role(figure, "centres", "evaluated")
    assert centres.marker.reversescale is False
    assert figure.layout.title.text.startswith("SOO partition")


def test_partition_marks_gp_running_open_failed_cells(mixed_tree: TreeView) -> None:
    figure = plot_partition(mixed_tree)

    gp_cells = cell_traces(figure, "gp")
    assert len(gp_cells) == 2
    for trace in gp_cells:
        assert trace.fillpattern.shape == "/"
        assert trace.fillcolor.startswith("rgb(")  # Coloured by the GP value under the hatching.
        assert "(GP bound)" in trace.text
    (running,) = cell_traces(figure, "running")
    assert running.fillcolor == "rgba(0,0,0,0)"
    assert running.line.color == "#9467bd"
    open_leaves = [n for n in mixed_tree.leaves() if n.state == "open" and n.value is None]
    open_cells = cell_traces(figure, "open")
    assert len(open_cells) == len(open_leaves) >= 1
    assert all(trace.line.dash == "dot" for trace in open_cells)
    (failed,) = cell_traces(figure, "failed")
    assert failed.fillpattern.shape == "x"
    assert failed.fillcolor == "lightgrey"
    # Pending cells are drawn last, on top of the cells with a value.
    n_pending = len(open_cells) + 1
    pending_last = {t.legendgroup for t in cell_traces(figure)[-n_pending:]}
    assert pending_last == {"cell-running", "cell-open"}
    legend = sorted(
        (t.legendrank, t.name) for t in figure.data if t.showlegend is not False and t.fill
    )
    assert [name for _, name in legend] == [
        "GP-scored cell",
        "failed cell",
        "running cell",
        "open cell",
    ]

    (gp_centres,) = traces_with_role(figure, "centres", "gp")
    assert gp_centres.marker.symbol == "diamond"
    assert len(gp_centres.x) == 2
    (running_centre,) = traces_with_role(figure, "centres", "running")
    assert running_centre.marker.symbol == "hourglass"
    (failed_centre,) = traces_with_role(figure, "centres", "failed")
    assert failed_centre.marker.symbol == "x"
    assert ", 2 GP-scored" in figure.layout.title.text
    assert figure.layout.title.text.startswith("BaMSOO partition")


def test_partition_5d_default_and_categorical_axes(study_5d: optuna.Study) -> None:
    tree = get_tree(study_5d)
    figure = plot_partition(study_5d)
    assert figure.layout.xaxis.title.text == "a"
    assert figure.layout.yaxis.title.text == "b"
    assert len(cell_traces(figure)) == len(tree.leaves())

    figure = plot_partition(study_5d, params=["c", "n"])
    assert list(figure.layout.xaxis.ticktext) == ["relu", "gelu", "silu"]
    assert list(figure.layout.xaxis.tickvals) == pytest.approx([1 / 6, 1 / 2, 5 / 6])
    assert list(figure.layout.yaxis.ticktext) == [str(n) for n in range(1, 9)]
    assert len(cell_traces(figure)) == len(tree.leaves())
    # Every evaluated centre sits on a bin position of both discrete axes.
    (centres,) = traces_with_role(figure, "centres", "evaluated")
    assert len(centres.x) == tree.n_evaluated
    assert set(round(x, 9) for x in centres.x) <= {round(v, 9) for v in (1 / 6, 1 / 2, 5 / 6)}
    # The running trial's node is drawn as a running cell and centre.
    assert len(cell_traces(figure, "running")) == 1
    assert len(traces_with_role(figure, "centres", "running")) == 1


def test_partition_5d_log_axis_ticks(study_5d: optuna.Study) -> None:
    figure = plot_partition(study_5d, params=("w", "a"))

    assert figure.layout.xaxis.title.text == "w (log)"
    assert list(figure.layout.xaxis.ticktext) == ["0.0001", "0.001", "0.01", "0.1", "1"]


def test_partition_unknown_param_lists_valid_names(study_5d: optuna.Study) -> None:
    with pytest.raises(
        ValueError, match=r"unknown parameter\(s\) \['lr'\].*\['a', 'b', 'c', 'n', 'w'\]"
    ):
        plot_partition(study_5d, params=("a", "lr"))


def test_partition_rejects_repeated_and_three_params(study_5d: optuna.Study) -> None:
    with pytest.raises(ValueError, match="names 'a' twice"):
        plot_partition(study_5d, params=("a", "a"))
    with pytest.raises(ValueError, match="one or two parameters"):
        plot_partition(study_5d, params=("a", "b", "c"))


def test_partition_1d_study_draws_segments() -> None:
    study = optuna.create_study(sampler=SOOSampler())
    study.optimize(lambda trial: (trial.suggest_float("x", -3.0, 3.0) - 1.0) ** 2, n_trials=12)
    study.ask()
    tree = get_tree(study)
    figure = plot_partition(study)

    valued_leaves = [node for node in tree.leaves() if node.value is not None]
    (segments,) = traces_with_role(figure, "segments", "inherited")
    assert sorted(segments.meta["nodes"]) == sorted(node.id for node in valued_leaves)
    assert len(segments.x) == 3 * len(valued_leaves)  # (x0, x1, gap) per cell.
    (band,) = traces_with_role(figure, "band", "running")
    assert len(band.meta["nodes"]) == 1
    assert figure.layout.xaxis.title.text == "x"
    assert figure.layout.yaxis.title.text == "Objective value (minimize)"
    (centres,) = traces_with_role(figure, "centres", "evaluated")
    assert list(centres.y) == pytest.approx(
        [node.value for node in tree.nodes if node.value_source == "evaluated"]
    )


def test_partition_1d_study_rejects_two_params() -> None:
    study = optuna.create_study(sampler=SOOSampler())
    study.optimize(lambda trial: trial.suggest_float("x", -3.0, 3.0) ** 2, n_trials=4)

    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['y'\].*\['x'\]"):
        plot_partition(study, params=("x", "y"))


def test_partition_without_tree_raises() -> None:
    study = optuna.create_study(sampler=RandomSampler(seed=0))
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)

    with pytest.raises(ValueError, match="no partition tree yet.*SOOSampler or BaMSOOSampler"):
        plot_partition(study)
    with pytest.raises(ValueError, match="no partition tree yet"):
        plot_tree(optuna.create_study(sampler=SOOSampler()))


def test_partition_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="optuna.Study or an optuna_fractal.TreeView, got str"):
        plot_partition("study.db")


# plot_tree (plotly)


def test_tree_one_point_per_node_and_edges(study_5d: optuna.Study) -> None:
    tree = get_tree(study_5d)
    figure = plot_tree(study_5d)

    node_traces = traces_with_role(figure, "nodes")
    assert sum(len(trace.x) for trace in node_traces) == len(tree.nodes)
    (edges,) = traces_with_role(figure, "edges")
    assert len(edges.x) == 3 * (len(tree.nodes) - 1)
    assert figure.layout.xaxis.title.text == "Depth"
    assert figure.layout.yaxis.title.text == "Objective value (minimize)"
    by_name = {trace.name: trace for trace in node_traces}
    assert by_name["evaluated, expanded"].marker.symbol == "circle-open"
    assert by_name["evaluated, leaf"].marker.symbol == "circle"
    assert by_name["inherited, leaf"].marker.symbol == "triangle-up"
    inherited = [trace for trace in node_traces if trace.meta["kind"] == "inherited"]
    assert sum(len(trace.x) for trace in inherited) == tree.n_inherited
    # The running node sits on the no-value row, above the worst value (minimizing).
    running = by_name["running, leaf"]
    assert running.marker.symbol == "hourglass"
    worst = max(node.value for node in tree.nodes if node.value is not None)
    assert running.y[0] > worst
    depths = {node.depth for node in tree.nodes}
    for trace in node_traces:
        assert set(trace.x) <= depths


def test_tree_marks_gp_and_failed_nodes(mixed_tree: TreeView) -> None:
    figure = plot_tree(mixed_tree)
    by_name = {trace.name: trace for trace in traces_with_role(figure, "nodes")}

    assert by_name["GP-scored, leaf"].marker.symbol == "diamond"
    assert len(by_name["GP-scored, leaf"].x) == 2
    assert by_name["failed, leaf"].marker.symbol == "x"
    assert by_name["open, leaf"].marker.symbol == "square"
    no_value_rows = {
        by_name[name].y[0] for name in ("failed, leaf", "open, leaf", "running, leaf")
    }
    assert len(no_value_rows) == 1
    best = min(n.value for n in mixed_tree.nodes if n.value_source == "evaluated")
    assert [shape.y0 for shape in figure.layout.shapes][0] == pytest.approx(best)
    assert figure.layout.title.text.startswith("BaMSOO tree (k=3)")


# matplotlib twins


def test_mpl_partition_2d_patches_and_centres(study_2d: optuna.Study) -> None:
    tree = get_tree(study_2d)
    ax = mpl_plot_partition(study_2d)
    try:
        assert len(ax.patches) == len(tree.leaves())
        assert {patch.get_gid() for patch in ax.patches} == {n.id for n in tree.leaves()}
        assert ax.get_xlabel() == "lr (log)"
        assert ax.get_ylabel() == "x"
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "1e-05",
            "0.0001",
            "0.001",
            "0.01",
            "0.1",
        ]
        centres = [c for c in ax.collections if c.get_gid() == "centres-evaluated"]
        assert len(centres[0].get_offsets()) == tree.n_evaluated
        patches = {patch.get_gid(): patch for patch in ax.patches}
        leaves = [node for node in tree.leaves() if node.value is not None]
        best_leaf = min(leaves, key=lambda node: node.value)
        viridis = matplotlib.colormaps["viridis"]
        assert to_hex(patches[best_leaf.id].get_facecolor()) == to_hex(viridis(1.0))
    finally:
        plt.close(ax.figure)


def test_mpl_partition_hatches_gp_and_outlines_pending(mixed_tree: TreeView) -> None:
    ax = mpl_plot_partition(mixed_tree)
    try:
        kinds: dict[str, list] = {}
        by_id = {node.id: node for node in mixed_tree.nodes}
        for patch in ax.patches:
            node = by_id[patch.get_gid()]
            kind = node.value_source or node.state
            kinds.setdefault(kind, []).append(patch)
        assert len(kinds["gp"]) == 2
        assert all(patch.get_hatch() == "//" for patch in kinds["gp"])
        assert kinds["failed"][0].get_hatch() == "xx"
        assert kinds["running"][0].get_facecolor()[3] == 0.0  # No fill.
        assert to_hex(kinds["running"][0].get_edgecolor()) == "#9467bd"
        assert kinds["open"][0].get_linestyle() == ":"
        assert all(patch.get_hatch() is None for patch in kinds["evaluated"])
        gids = {collection.get_gid() for collection in ax.collections}
        assert {"centres-evaluated", "centres-gp", "centres-running", "best"} <= gids
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert "GP-scored cell" in legend
        assert "running cell" in legend
    finally:
        plt.close(ax.figure)


def test_mpl_partition_5d_and_1d(study_5d: optuna.Study) -> None:
    tree = get_tree(study_5d)
    ax = mpl_plot_partition(study_5d, params=("c", "w"))
    try:
        assert len(ax.patches) == len(tree.leaves())
        assert [t.get_text() for t in ax.get_xticklabels()] == ["relu", "gelu", "silu"]
        assert ax.get_ylabel() == "w (log)"
    finally:
        plt.close(ax.figure)

    ax = mpl_plot_partition(study_5d, params="a")
    try:
        segments = [c for c in ax.collections if c.get_gid() == "segments-inherited"]
        valued = [n for n in tree.leaves() if n.value_source in ("evaluated", "inherited")]
        assert len(segments[0].get_segments()) == len(valued)
        assert ax.get_ylabel() == "Objective value (minimize)"
    finally:
        plt.close(ax.figure)


def test_mpl_tree_points_markers_and_edges(mixed_tree: TreeView) -> None:
    ax = mpl_plot_tree(mixed_tree)
    try:
        collections = {c.get_gid(): c for c in ax.collections}
        total = sum(
            len(c.get_offsets()) for gid, c in collections.items() if gid.startswith("nodes-")
        )
        assert total == len(mixed_tree.nodes)
        assert len(collections["edges"].get_segments()) == len(mixed_tree.nodes) - 1
        assert len(collections["nodes-gp-leaf"].get_offsets()) == 2
        # Expanded nodes are hollow, leaves filled.
        assert len(collections["nodes-evaluated-expanded"].get_facecolors()) == 0
        assert collections["nodes-evaluated-leaf"].get_facecolors()[0][3] == 1.0
        assert ax.get_xlabel() == "Depth"
        assert ax.get_title().startswith("BaMSOO tree")
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert "GP-scored, leaf" in legend
        assert "failed, leaf" in legend
    finally:
        plt.close(ax.figure)


# A real BaMSOO study


@pytest.fixture(scope="module")
def bamsoo_study() -> optuna.Study:
    import torch  # BaMSOOSampler's default surrogate needs the bo extra.

    from optuna_fractal import BaMSOOSampler

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=BaMSOOSampler(seed=0))
    study.optimize(objective_2d, n_trials=20)
    study.ask()
    return study


def test_bamsoo_study_plots_gp_scored_nodes(bamsoo_study: optuna.Study) -> None:
    tree = get_tree(bamsoo_study)
    assert tree.sampler == "bamsoo"
    assert tree.n_gp_scored > 0

    figure = plot_partition(bamsoo_study)
    gp_leaves = [n for n in tree.leaves() if n.value_source == "gp"]
    gp_cells = cell_traces(figure, "gp")
    assert {cell_node_id(trace) for trace in gp_cells} == {n.id for n in gp_leaves}
    assert all(trace.fillpattern.shape == "/" for trace in gp_cells)
    (gp_centres,) = traces_with_role(figure, "centres", "gp")
    assert len(gp_centres.x) == tree.n_gp_scored
    assert f", {tree.n_gp_scored} GP-scored" in figure.layout.title.text
    assert len(cell_traces(figure, "running")) == 1

    figure = plot_tree(bamsoo_study)
    gp_points = traces_with_role(figure, "nodes", "gp")
    assert sum(len(trace.x) for trace in gp_points) == tree.n_gp_scored
    assert all(trace.marker.symbol.startswith("diamond") for trace in gp_points)

    ax = mpl_plot_partition(bamsoo_study)
    try:
        hatched = {patch.get_gid() for patch in ax.patches if patch.get_hatch() == "//"}
        assert hatched == {n.id for n in gp_leaves}
    finally:
        plt.close(ax.figure)


# Docstring examples


@pytest.mark.parametrize(
    "function",
    [plot_partition, plot_tree, mpl_plot_partition, mpl_plot_tree],
    ids=["plot_partition", "plot_tree", "mpl_plot_partition", "mpl_plot_tree"],
)
def test_docstring_example_runs(
    function, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", inspect.getdoc(function) or "", flags=re.S)
    assert len(blocks) == 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        exec(compile(textwrap.dedent(blocks[0]), f"<{function.__name__} example>", "exec"), {})
    finally:
        plt.close("all")
    written = sorted(path.name for path in tmp_path.iterdir())
    assert len(written) == 1
    assert written[0].split(".")[0] in ("partition", "tree")


def test_import_loads_no_plotting_library() -> None:
    code = (
        "import sys, optuna_fractal.visualization, optuna_fractal.visualization.matplotlib\n"
        "libraries = ('plotly', 'matplotlib', 'optuna_dashboard')\n"
        "print(sorted(name for name in libraries if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_infinite_values_get_worst_colour_and_no_value_row() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -5.0, 5.0)
        y = trial.suggest_float("y", -5.0, 5.0)
        return math.inf if x > 2.0 else x**2 + y**2

    study = optuna.create_study(sampler=SOOSampler())
    study.optimize(objective, n_trials=15)
    tree = get_tree(study)
    infinite = [n for n in tree.leaves() if n.value is not None and math.isinf(n.value)]
    assert infinite

    cells = {cell_node_id(trace): trace for trace in cell_traces(plot_partition(study))}
    for node in infinite:
        assert cells[node.id].fillcolor == WORST_COLOUR

    figure = plot_tree(study)
    finite = [n.value for n in tree.nodes if n.value is not None and math.isfinite(n.value)]
    ys = [y for trace in traces_with_role(figure, "nodes") for y in trace.y]
    assert len(ys) == len(tree.nodes)
    assert all(math.isfinite(y) for y in ys)
    assert max(ys) > max(finite)  # The infinite nodes sit on the no-value row.
