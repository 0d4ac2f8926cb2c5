"""Figures of the suite, each saved as PNG and SVG.

Every sampler keeps one colour in every figure. Regret axes are logarithmic, with regrets below
:data:`REGRET_FLOOR` drawn at the floor.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import analysis
from benchmarks.samplers import REGISTRY


REGRET_FLOOR = 1e-8
WORKER_COLUMNS = ("workers", "wall_seconds", "final_regret", "storage")


def _pyplot():  # noqa: ANN202 - matplotlib.pyplot has no importable type
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sampler_color(name: str) -> str:
    names = list(REGISTRY)
    palette = [
        "#d62728",  # soo
        "#9467bd",  # bamsoo
        "#8c564b",  # lhs
        "#1f77b4",  # bo
        "#17becf",  # gp
        "#2ca02c",  # tpe
        "#ff7f0e",  # cmaes
        "#7f7f7f",  # random
        "#e377c2",  # direct
        "#bcbd22",  # direct-l
    ]
    index = names.index(name) if name in names else len(names)
    return palette[index % len(palette)]


def sampler_label(name: str) -> str:
    entry = REGISTRY.get(name)
    return entry.label if entry is not None else name


def save(figure, directory: Path, stem: str) -> list[Path]:  # noqa: ANN001
    """Save ``figure`` as ``stem.png`` and ``stem.svg`` in ``directory`` and close it."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{stem}.png", directory / f"{stem}.svg"]
    plt = _pyplot()
    # A fixed salt and no date make the SVG text the same for the same data.
    with plt.rc_context({"svg.hashsalt": "optuna-fractal-benchmarks"}):
        figure.savefig(paths[0], dpi=110, bbox_inches="tight")
        figure.savefig(paths[1], bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    return paths


def _grid(count: int, columns: int = 4) -> tuple[int, int]:
    columns = min(columns, count)
    return math.ceil(count / columns), columns


def plot_regret(frame: pd.DataFrame, directory: Path) -> list[Path]:
    """Plot the median regret and its quartiles versus evaluations.

    Draws one figure per category and budget, with one panel per problem.
    """
    plt = _pyplot()
    curves = analysis.regret_quartiles(frame[frame["regret"].notna()])
    categories = frame.groupby(["problem", "dimension"])["category"].first()
    paths: list[Path] = []
    for budget, by_budget in curves.groupby("budget"):
        by_budget = by_budget.assign(
            category=[
                categories[(p, d)] for p, d in zip(by_budget["problem"], by_budget["dimension"])
            ]
        )
        for category, part in by_budget.groupby("category"):
            panels = sorted(part.groupby(["problem", "dimension"]).groups)
            rows, columns = _grid(len(panels))
            figure, axes = plt.subplots(
                rows, columns, figsize=(3.6 * columns, 2.9 * rows), squeeze=False
            )
            for axis, (problem, dimension) in zip(axes.flat, panels):
                panel = part[(part["problem"] == problem) & (part["dimension"] == dimension)]
                for sampler, line in panel.groupby("sampler"):
                    color = sampler_color(sampler)
                    x = line["evaluations"]
                    axis.plot(
                        x,
                        line["median"].clip(lower=REGRET_FLOOR),
                        color=color,
                        label=sampler_label(sampler),
                        linewidth=1.4,
                    )
                    axis.fill_between(
                        x,
                        line["q25"].clip(lower=REGRET_FLOOR),
                        line["q75"].clip(lower=REGRET_FLOOR),
                        color=color,
                        alpha=0.15,
                        linewidth=0,
                    )
                runs = int(panel["runs"].max())
                axis.set_title(f"{problem} ({dimension}-D, {runs} runs)", fontsize=9)
                axis.set_yscale("log")
                axis.set_xlabel("evaluations", fontsize=8)
                axis.set_ylabel("regret", fontsize=8)
                axis.tick_params(labelsize=7)
                axis.grid(alpha=0.3)
            for axis in list(axes.flat)[len(panels) :]:
                axis.set_visible(False)
            handles, labels = axes.flat[0].get_legend_handles_labels()
            figure.suptitle(
                f"{category}: median regret and quartiles, budget {budget}", fontsize=10
            )
            figure.tight_layout()
            # Below the panels; save() uses bbox_inches="tight", which keeps it in the image.
            figure.legend(
                handles,
                labels,
                loc="upper center",
                ncol=min(len(labels), 5),
                fontsize=8,
                bbox_to_anchor=(0.5, 0.0),
            )
            stem = f"regret_{_slug(category)}_b{budget}"
            paths += save(figure, directory, stem)
    return paths


def plot_sampler_time(
    frame: pd.DataFrame,
    directory: Path,
    stem: str = "sampler_time",
    *,
    cumulative: bool = False,
) -> list[Path]:
    """Plot the median sampler time versus the trial number, one panel per category.

    Args:
        frame: Results.
        directory: Folder of the figure files.
        stem: File name without extension. Defaults to ``"sampler_time"``.
        cumulative: Plot the sampler time summed over the run's trials so far instead of the
            time of each trial; BaMSOO alternates cheap trials with GP fits, which makes its
            per-trial curve jagged. Defaults to ``False``.
    """
    plt = _pyplot()
    curve = analysis.sampler_time_curve(frame, cumulative=cumulative)
    scale, unit = (1.0, "s") if cumulative else (1e3, "ms")
    ylabel = f"cumulative sampler time [{unit}]" if cumulative else "sampler time per trial [ms]"
    categories = analysis.category_order(list(curve["category"].unique()))
    rows, columns = _grid(len(categories), columns=3)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, category in zip(axes.flat, categories):
        part = curve[curve["category"] == category]
        for sampler, line in part.groupby("sampler"):
            color = sampler_color(sampler)
            x = line["trial"] + 1
            axis.plot(
                x, line["median"] * scale, color=color, label=sampler_label(sampler), linewidth=1.2
            )
            axis.fill_between(
                x, line["q25"] * scale, line["q75"] * scale, color=color, alpha=0.15, linewidth=0
            )
        axis.set_yscale("log")
        axis.set_title(category, fontsize=9)
        axis.set_xlabel("trial", fontsize=8)
        axis.set_ylabel(ylabel, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)

    for axis in list(axes.flat)[len(categories) :]:
        axis.set_visible(False)
    title = "Cumulative sampler time" if cumulative else "Sampler time per trial"
    figure.suptitle(f"{title} (ask + tell), median and quartiles over runs", fontsize=10)
    figure.tight_layout()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(
        handles,
        labels,
        loc="upper center",
        ncol=min(len(labels), 4),
        fontsize=7,
        bbox_to_anchor=(0.5, 0.0),
    )
    return save(figure, directory, stem)


def plot_timing_study(frame: pd.DataFrame, directory: Path, stem: str) -> list[Path]:
    """Plot one side-by-side timing run: per-trial and cumulative sampler time."""
    plt = _pyplot()
    figure, (trial_axis, total_axis) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for sampler, run in frame.sort_values("trial").groupby("sampler"):
        color = sampler_color(sampler)
        x = run["trial"] + 1
        seconds = run["sampler_seconds"]
        trial_axis.plot(
            x, seconds * 1e3, color=color, linewidth=0.6, alpha=0.8, label=sampler_label(sampler)
        )
        total_axis.plot(x, seconds.cumsum(), color=color, label=sampler_label(sampler))
    trial_axis.set_yscale("log")
    trial_axis.set_xlabel("trial")
    trial_axis.set_ylabel("sampler time of the trial [ms]")
    trial_axis.grid(alpha=0.3)
    total_axis.set_xlabel("trial")
    total_axis.set_ylabel("cumulative sampler time [s]")
    total_axis.grid(alpha=0.3)
    total_axis.legend(fontsize=8)
    first = frame.iloc[0]
    figure.suptitle(
        f"Sampler time (ask + tell), {first['problem']} {int(first['dimension'])}-D, samplers "
        "advanced in turn in one process",
        fontsize=10,
    )
    figure.tight_layout()
    return save(figure, directory, stem)


def plot_bamsoo_savings(frame: pd.DataFrame, directory: Path) -> list[Path]:
    """Plot the cumulative number of cells BaMSOO scored with its GP instead of evaluating them."""
    curve = analysis.bamsoo_savings_curve(frame)
    if curve.empty:
        return []
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    groups = dict(list(curve.groupby(["category", "budget"])))
    order = analysis.category_order([category for category, _ in groups])
    keys = sorted(groups, key=lambda key: (order.index(key[0]), key[1]))
    for index, (category, budget) in enumerate(keys):
        line = groups[(category, budget)]
        color = f"C{index % 10}"
        x = line["trial"] + 1
        axis.plot(x, line["median"], color=color, label=f"{category} (budget {budget})")
        axis.fill_between(x, line["q25"], line["q75"], color=color, alpha=0.15, linewidth=0)
    axis.set_xlabel("evaluations")
    axis.set_ylabel("cells scored by the GP (cumulative)")
    axis.set_title("Evaluations saved by BaMSOO, median and quartiles", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return save(figure, directory, "bamsoo_saved")


def plot_mean_rank(table: pd.DataFrame, directory: Path, budget: int) -> list[Path]:
    """Plot the mean rank per sampler and category as grouped bars (lower is better)."""
    if table.empty:
        return []
    plt = _pyplot()
    body = table.drop(index=["groups", "samplers"])
    categories = list(body.columns)
    samplers = list(body.index)
    width = 0.8 / len(samplers)
    figure, axis = plt.subplots(figsize=(max(6.0, 1.3 * len(categories) + 2), 3.8))
    positions = np.arange(len(categories))
    for index, sampler in enumerate(samplers):
        axis.bar(
            positions + index * width - 0.4 + width / 2,
            body.loc[sampler],
            width,
            color=sampler_color(sampler),
            label=sampler_label(sampler),
        )
    groups = table.loc["groups"]
    axis.set_xticks(positions)
    axis.set_xticklabels([f"{c}\n({int(groups[c])} groups)" for c in categories], fontsize=8)
    axis.set_ylabel("mean rank (1 = best)")
    axis.set_title(f"Mean rank of the final best value, budget {budget}", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.tight_layout()
    return save(figure, directory, f"mean_rank_b{budget}")


def read_workers_csv(path: Path) -> pd.DataFrame:
    """Read the parallel-workers CSV and check its columns.

    Raises:
        ValueError: A column of :data:`WORKER_COLUMNS` is missing.
    """
    frame = pd.read_csv(path)
    missing = [column for column in WORKER_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; it needs {list(WORKER_COLUMNS)}.")
    return frame


def plot_workers(frame: pd.DataFrame, directory: Path) -> list[Path]:
    """Plot wall time and final regret versus the number of workers.

    Draws one line per storage, and per sampler when the CSV has a ``sampler`` column.
    """
    plt = _pyplot()
    figure, (wall_axis, regret_axis) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    keys = ["storage", "sampler"] if "sampler" in frame.columns else ["storage"]
    for key, part in frame.groupby(keys):
        label = ", ".join(str(k) for k in key)
        summary = part.groupby("workers")[["wall_seconds", "final_regret"]].median()
        wall_axis.plot(summary.index, summary["wall_seconds"], marker="o", label=label)
        regret_axis.plot(
            summary.index,
            summary["final_regret"].clip(lower=REGRET_FLOOR),
            marker="o",
            label=label,
        )
    wall_axis.set_xlabel("workers")
    wall_axis.set_ylabel("wall time [s] (median)")
    wall_axis.set_xscale("log", base=2)
    wall_axis.grid(alpha=0.3)
    wall_axis.legend(fontsize=8)
    regret_axis.set_xlabel("workers")
    regret_axis.set_ylabel("final regret (median)")
    regret_axis.set_xscale("log", base=2)
    regret_axis.set_yscale("log")
    regret_axis.grid(alpha=0.3)
    figure.suptitle("Parallel workers sharing one storage", fontsize=10)
    figure.tight_layout()
    return save(figure, directory, "workers_wall_time")


def plot_all(
    frame: pd.DataFrame,
    directory: Path,
    samplers: Sequence[str],
    workers_csv: Path | None = None,
) -> list[Path]:
    """Draw every figure the data allow and return the written paths."""
    paths: list[Path] = []
    if not frame.empty:
        paths += plot_regret(frame, directory)
        paths += plot_sampler_time(frame, directory)
        paths += plot_sampler_time(frame, directory, "sampler_time_cumulative", cumulative=True)
        paths += plot_bamsoo_savings(frame, directory)
        for budget in sorted(frame["budget"].unique()):
            present = [
                s for s in samplers if s in set(frame[frame["budget"] == budget]["sampler"])
            ]
            table = analysis.mean_rank_table(frame, int(budget), present)
            paths += plot_mean_rank(table, directory, int(budget))
    if workers_csv is not None and workers_csv.exists():
        paths += plot_workers(read_workers_csv(workers_csv), directory)
    return paths


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
