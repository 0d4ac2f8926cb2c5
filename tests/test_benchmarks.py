"""Tests of the benchmark suite: the tiny profile end to end, resuming, problems and tables."""

from __future__ import annotations

import csv
import math
from pathlib import Path
import sys

import numpy as np
import pandas as pd
import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # `benchmarks` is a folder of the checkout, not an installed package.
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import analysis  # noqa: E402
from benchmarks.cli import main  # noqa: E402
from benchmarks.plots import plot_workers  # noqa: E402
from benchmarks.plots import read_workers_csv  # noqa: E402
from benchmarks.problems import BoxProblem  # noqa: E402
from benchmarks.problems import default_dimension  # noqa: E402
from benchmarks.problems import make_problem  # noqa: E402
from benchmarks.problems import parse_problem  # noqa: E402
from benchmarks.problems import ProblemSpec  # noqa: E402
from benchmarks.profiles import get_profile  # noqa: E402
from benchmarks.results import COLUMNS  # noqa: E402
from benchmarks.results import completed_keys  # noqa: E402
from benchmarks.runner import run_task  # noqa: E402
from benchmarks.runner import RunTask  # noqa: E402
from benchmarks.samplers import DEFAULT_SAMPLERS  # noqa: E402
from benchmarks.samplers import get_entry  # noqa: E402
from benchmarks.samplers import split_available  # noqa: E402
from benchmarks.studies import sampling_time_study  # noqa: E402
from benchmarks.studies import side_by_side_timing  # noqa: E402


TINY_BUDGET = 12


@pytest.fixture(scope="module")
def tiny_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("benchmarks")
    status = main(["--profile", "tiny", "--output", str(output), "--jobs", "1"])
    assert status == 0
    return output


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_default_samplers_all_available() -> None:
    available, missing = split_available(DEFAULT_SAMPLERS)
    assert missing == {}
    assert available == list(DEFAULT_SAMPLERS)


def test_tiny_profile_csv_columns(tiny_output: Path) -> None:
    with (tiny_output / "tiny" / "results.csv").open(newline="") as file:
        header = next(csv.reader(file))
    assert tuple(header) == COLUMNS


def test_tiny_profile_every_sampler_finite(tiny_output: Path) -> None:
    frame = analysis.load_results(tiny_output / "tiny" / "results.csv")
    finals = analysis.final_rows(frame).set_index("sampler")
    assert sorted(finals.index) == sorted(DEFAULT_SAMPLERS)
    for sampler, row in finals.iterrows():
        assert row["trial"] == TINY_BUDGET - 1, sampler
        assert math.isfinite(row["best_so_far"]), sampler
        assert row["regret"] >= 0.0, sampler
        assert row["best_so_far"] == pytest.approx(row["f_opt"] + row["regret"]), sampler


def test_tiny_profile_rows_per_run(tiny_output: Path) -> None:
    frame = analysis.load_results(tiny_output / "tiny" / "results.csv")
    counts = frame.groupby("sampler")["trial"].agg(["count", "min", "max"])
    assert (counts["count"] == TINY_BUDGET).all()
    assert (counts["min"] == 0).all()
    assert (counts["max"] == TINY_BUDGET - 1).all()
    assert (frame["sampler_seconds"] >= 0).all()
    assert (frame["objective_seconds"] >= 0).all()


def test_tiny_profile_best_so_far_monotone(tiny_output: Path) -> None:
    frame = analysis.load_results(tiny_output / "tiny" / "results.csv")
    for sampler, run in frame.groupby("sampler"):
        best = run.sort_values("trial")["best_so_far"].to_numpy()
        assert np.all(np.diff(best) <= 0), sampler
        assert best[-1] == run["value"].min(), sampler


def test_tiny_profile_bamsoo_records_scored_nodes(tiny_output: Path) -> None:
    frame = analysis.load_results(tiny_output / "tiny" / "results.csv")
    scored = frame[frame["sampler"] == "bamsoo"]["gp_scored_nodes"]
    assert scored.notna().any()
    assert (scored.dropna() >= 0).all()
    assert frame[frame["sampler"] == "tpe"]["gp_scored_nodes"].isna().all()


def test_tiny_profile_plots_written(tiny_output: Path) -> None:
    plots = tiny_output / "tiny" / "plots"
    stems = ("regret_bbob_2_d_b12", "sampler_time", "sampler_time_cumulative", "bamsoo_saved")
    for stem in (*stems, "mean_rank_b12"):
        assert (plots / f"{stem}.png").stat().st_size > 0, stem
        assert (plots / f"{stem}.svg").stat().st_size > 0, stem


def test_rerun_skips_complete_runs(tiny_output: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "tiny" / "results.csv"
    csv_path.parent.mkdir()
    csv_path.write_bytes((tiny_output / "tiny" / "results.csv").read_bytes())
    before = len(read_csv_rows(csv_path))
    assert main(["--profile", "tiny", "--output", str(tmp_path), "--no-plots"]) == 0
    assert len(read_csv_rows(csv_path)) == before


def test_half_written_run_is_redone(tiny_output: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "tiny" / "results.csv"
    csv_path.parent.mkdir()
    lines = (tiny_output / "tiny" / "results.csv").read_text().splitlines(keepends=True)
    # Drop the last 3 rows and cut the new last line in half, as a killed writer would.
    truncated = lines[:-3]
    truncated[-1] = truncated[-1][: len(truncated[-1]) // 2]
    csv_path.write_text("".join(truncated))
    last_sampler = read_csv_rows(tiny_output / "tiny" / "results.csv")[-1]["sampler"]
    assert last_sampler not in {key.sampler for key in completed_keys(csv_path)}

    assert (
        main(
            [
                "--profile",
                "tiny",
                "--output",
                str(tmp_path),
                "--no-plots",
                "--samplers",
                last_sampler,
                "random",
            ]
        )
        == 0
    )

    keys = completed_keys(csv_path)
    assert last_sampler in {key.sampler for key in keys}
    frame = analysis.load_results(csv_path)
    assert len(frame[frame["sampler"] == last_sampler]) == TINY_BUDGET
    assert len(frame[frame["sampler"] == "random"]) == TINY_BUDGET


@pytest.mark.parametrize(
    "spec",
    [
        ProblemSpec("bbob-f01", 2, 1),
        ProblemSpec("bbob-f15", 5, 3),
        ProblemSpec("bbob-f21", 10, 2),
        ProblemSpec("hartmann6", 6),
        ProblemSpec("rosenbrock", 5, 1),
        ProblemSpec("ackley", 5, 2),
    ],
)
def test_box_problem_optimum_value(spec: ProblemSpec) -> None:
    problem = make_problem(spec)
    assert isinstance(problem, BoxProblem)
    assert problem.x_opt is not None
    assert np.all(problem.x_opt >= problem.lower)
    assert np.all(problem.x_opt <= problem.upper)
    assert problem.function(problem.x_opt) == pytest.approx(problem.f_opt, abs=1e-9)
    rng = np.random.default_rng(0)
    samples = rng.uniform(problem.lower, problem.upper, size=(200, spec.dimension))
    assert min(problem.function(x) for x in samples) > problem.f_opt


def test_branin_optimum_value() -> None:
    problem = make_problem(ProblemSpec("branin", 2))
    for x in ([-math.pi, 12.275], [math.pi, 2.275], [9.42478, 2.475]):
        assert problem.function(np.array(x)) == pytest.approx(problem.f_opt, abs=1e-5)


@pytest.mark.parametrize("name", ["rosenbrock", "ackley"])
def test_shifted_optimum_off_centre(name: str) -> None:
    for instance in (1, 2, 3):
        problem = make_problem(ProblemSpec(name, 5, instance))
        centre = (problem.lower + problem.upper) / 2
        unit = (problem.x_opt - problem.lower) / (problem.upper - problem.lower)
        assert np.min(np.abs(problem.x_opt - centre)) > 1e-3
        # Cell centres of a ternary split sit at odd multiples of 1 / (2 * 3^h).
        for depth in (1, 2, 3):
            grid = (2 * np.arange(3**depth) + 1) / (2 * 3**depth)
            assert np.min(np.abs(unit[:, None] - grid[None, :])) > 1e-6


def test_shift_differs_between_instances() -> None:
    first = make_problem(ProblemSpec("ackley", 5, 1)).x_opt
    second = make_problem(ProblemSpec("ackley", 5, 2)).x_opt
    assert not np.allclose(first, second)


def test_lora_mixed_optimum() -> None:
    problem = make_problem(ProblemSpec("lora-mixed", 6, 1))
    target = problem.target
    best = {
        "rank": target.rank,
        "alpha": target.alpha,
        "dropout": target.dropout,
        "learning_rate": target.learning_rate,
        "weight_decay": target.weight_decay,
        "target_modules": target.target_modules,
    }
    assert problem.evaluate(best) == 0.0
    assert problem.evaluate({**best, "rank": target.rank * 2}) > 0.0
    assert problem.evaluate({**best, "target_modules": "attention"}) > 0.0
    assert problem.evaluate({**best, "learning_rate": 1e-1}) > 1.0
    assert set(problem.search_space) == set(best)


def test_tabular_problem_optimum() -> None:
    problem = make_problem(parse_problem("hpobench-australian"))
    index = np.unravel_index(np.nanargmin(problem.table), problem.table.shape)
    params = {name: int(i) for name, i in zip(problem.search_space, index)}
    assert problem.evaluate(params) == problem.f_opt
    assert 0.0 < problem.f_opt < 0.5


def test_direct_uses_exact_budget() -> None:
    rows = run_task(RunTask(ProblemSpec("hartmann6", 6), "direct", 0, 37))
    assert len(rows) == 37
    assert [row["trial"] for row in rows] == list(range(37))
    assert float(rows[-1]["regret"]) >= 0.0


def test_direct_rejects_mixed_problem() -> None:
    with pytest.raises(ValueError, match="continuous box"):
        run_task(RunTask(ProblemSpec("lora-mixed", 6, 1), "direct", 0, 5))


def test_mixed_problem_runs_soo() -> None:
    rows = run_task(RunTask(ProblemSpec("lora-mixed", 6, 1), "soo", 0, 15))
    assert len(rows) == 15
    assert float(rows[-1]["regret"]) >= 0.0


def test_invalid_problem_names_fix() -> None:
    with pytest.raises(ValueError, match="bbob-f01"):
        make_problem(ProblemSpec("bbob-f99", 2))
    with pytest.raises(ValueError, match="dimension 6"):
        make_problem(ProblemSpec("hartmann6", 5))
    with pytest.raises(ValueError, match="name\\[:dimension"):
        parse_problem("bbob-f01:2:1:4")


def test_unknown_sampler_lists_choices() -> None:
    with pytest.raises(ValueError, match="soo"):
        get_entry("nope")


def test_mean_rank_table_values() -> None:
    rows = []
    for seed, values in enumerate([(1.0, 2.0, 2.0), (3.0, 1.0, 2.0)]):
        for sampler, value in zip(("a", "b", "c"), values):
            rows.append(
                {
                    "run_id": f"{sampler}{seed}",
                    "problem": "p",
                    "dimension": 2,
                    "instance": 1,
                    "seed": seed,
                    "budget": 10,
                    "sampler": sampler,
                    "trial": 9,
                    "best_so_far": value,
                    "category": "BBOB 2-D",
                }
            )
    table = analysis.mean_rank_table(pd.DataFrame(rows), 10, ["a", "b", "c"])
    # Seed 0: a=1, b=c=2.5. Seed 1: b=1, c=2, a=3.
    assert table.loc["a", "BBOB 2-D"] == pytest.approx(2.0)
    assert table.loc["b", "BBOB 2-D"] == pytest.approx(1.75)
    assert table.loc["c", "BBOB 2-D"] == pytest.approx(2.25)
    assert table.loc["groups", "BBOB 2-D"] == 2
    assert table.loc["samplers", "BBOB 2-D"] == 3
    intervals = analysis.mean_rank_intervals(pd.DataFrame(rows), 10, ["a", "b", "c"])
    assert intervals.loc["b", "BBOB 2-D"] == "1.75 [1.00, 2.50]"


def test_side_by_side_timing_table(tmp_path: Path) -> None:
    study = sampling_time_study(trials=8, problem=ProblemSpec("branin", 2))
    table = side_by_side_timing(study, tmp_path / "timing.csv")
    assert list(table.index) == ["soo", "tpe", "tpe / soo"]
    assert (table["total s"] > 0).all()
    assert (table.loc[["soo", "tpe"], "final regret"] >= 0).all()
    ratio = table.loc["tpe", "total s"] / table.loc["soo", "total s"]
    assert table.loc["tpe / soo", "total s"] == pytest.approx(ratio)
    assert len(read_csv_rows(tmp_path / "timing.csv")) == 16


def test_workers_plot(tmp_path: Path) -> None:
    csv_path = tmp_path / "workers.csv"
    pd.DataFrame(
        {
            "workers": [1, 2, 4, 1, 2, 4],
            "wall_seconds": [40.0, 21.0, 12.0, 42.0, 23.0, 14.0],
            "final_regret": [0.1, 0.1, 0.2, 0.1, 0.12, 0.2],
            "storage": ["sqlite"] * 3 + ["postgresql"] * 3,
            "sampler": ["soo"] * 6,
        }
    ).to_csv(csv_path, index=False)
    paths = plot_workers(read_workers_csv(csv_path), tmp_path / "plots")
    assert [p.name for p in paths] == ["workers_wall_time.png", "workers_wall_time.svg"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_workers_csv_missing_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "workers.csv"
    csv_path.write_text("workers,wall_seconds\n1,3.0\n")
    with pytest.raises(ValueError, match="final_regret"):
        read_workers_csv(csv_path)


def test_cli_rejects_zero_jobs(tmp_path: Path) -> None:
    assert main(["--profile", "tiny", "--output", str(tmp_path), "--jobs", "0"]) == 2
    assert not (tmp_path / "tiny" / "results.csv").exists()


def test_full_profile_problems_build() -> None:
    specs = {case.problem for case in get_profile("full").cases}
    assert {spec.name for spec in specs} >= {"bbob-f01", "branin", "lora-mixed"}
    for spec in sorted(specs):
        if spec.name == "llm-cpu":
            # Building it loads the LLM objective; its dimension must match its search space.
            assert spec.dimension == default_dimension("llm-cpu")
            continue
        problem = make_problem(spec)
        assert len(problem.search_space) == spec.dimension, spec.label
