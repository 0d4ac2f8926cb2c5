"""Aggregates of the results CSV: regret curves, mean ranks, sampler time, BaMSOO's savings.

All functions take the data frame of :func:`load_results`, which contains complete runs only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.results import read_complete_rows


RUN_COLUMNS = ["problem", "dimension", "instance", "sampler", "seed", "budget"]
# A ranking group: one problem instance, one seed, one budget.
GROUP_COLUMNS = ["problem", "dimension", "instance", "seed", "budget"]
_NUMERIC = [
    "dimension",
    "instance",
    "seed",
    "budget",
    "f_opt",
    "run_rows",
    "trial",
    "value",
    "best_so_far",
    "regret",
    "ask_seconds",
    "tell_seconds",
    "sampler_seconds",
    "objective_seconds",
    "elapsed_seconds",
    "gp_scored_nodes",
]


def load_results(path: Path) -> pd.DataFrame:
    """Read the complete runs of a results CSV into a data frame with numeric columns."""
    frame = pd.DataFrame(read_complete_rows(path))
    if frame.empty:
        return frame
    for column in _NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["category"] = frame.apply(category_of, axis=1)
    return frame


def category_of(row: pd.Series) -> str:
    """Return the table column of a run: ``BBOB 2-D``, ``classic``, ``HPO tables`` ..."""
    family = row["family"]
    if family == "bbob":
        return f"BBOB {int(row['dimension'])}-D"
    return {"classic": "classic", "hpo": "HPO tables", "mixed": "mixed", "llm": "LLM"}.get(
        family, str(family)
    )


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the last evaluation of every run."""
    index = frame.groupby("run_id")["trial"].idxmax()
    return frame.loc[index].reset_index(drop=True)


def regret_quartiles(frame: pd.DataFrame) -> pd.DataFrame:
    """Compute the median and quartiles of regret per evaluation.

    Groups by problem, dimension, budget, sampler and evaluation number. Runs that stopped
    before the budget keep their last best-so-far for the later evaluations.
    """
    runs = []
    for _, run in frame.groupby("run_id"):
        budget = int(run["budget"].iloc[0])
        regret = run.sort_values("trial")["regret"].to_numpy()
        if len(regret) < budget:
            regret = np.concatenate([regret, np.full(budget - len(regret), regret[-1])])
        first = run.iloc[0]
        runs.append(
            pd.DataFrame(
                {
                    "problem": first["problem"],
                    "dimension": first["dimension"],
                    "budget": budget,
                    "sampler": first["sampler"],
                    "evaluations": np.arange(1, budget + 1),
                    "regret": regret,
                }
            )
        )
    curves = pd.concat(runs, ignore_index=True)
    grouped = curves.groupby(["problem", "dimension", "budget", "sampler", "evaluations"])[
        "regret"
    ]
    result = grouped.quantile([0.25, 0.5, 0.75]).unstack()
    result.columns = ["q25", "median", "q75"]
    result["runs"] = grouped.count()
    return result.reset_index()


def ranks(frame: pd.DataFrame, budget: int, samplers: Sequence[str]) -> pd.DataFrame:
    """Rank each sampler's final best-so-far in every group (problem instance, seed, budget).

    Within a category (``BBOB 2-D``, ``classic`` ...), a group counts only if every one of
    ``samplers`` that ran anywhere in that category has a complete run in it. DIRECT runs on
    continuous boxes only, so it is ranked only in the categories of box problems. Rank 1 is
    best, and ties share the average rank. Values are compared at 12 significant digits so that
    rounding noise does not break ties.
    """
    finals = final_rows(frame[(frame["budget"] == budget) & frame["sampler"].isin(samplers)])
    if finals.empty:
        return finals.assign(rank=pd.Series(dtype=float))
    finals = finals.copy()
    finals["rounded"] = finals["best_so_far"].map(_round_significant)
    expected = finals.groupby("category")["sampler"].transform("nunique")
    present = finals.groupby(GROUP_COLUMNS)["sampler"].transform("nunique")
    finals = finals[present == expected].copy()
    finals["rank"] = finals.groupby(GROUP_COLUMNS)["rounded"].rank(method="average")
    return finals


def _round_significant(value: float) -> float:
    if not np.isfinite(value) or value == 0:
        return value
    return float(f"{value:.12g}")


def mean_rank_table(frame: pd.DataFrame, budget: int, samplers: Sequence[str]) -> pd.DataFrame:
    """Tabulate the mean rank per sampler (rows) and category (columns).

    The last row, ``groups``, is the number of ranking groups behind each column, and
    ``samplers`` the number of samplers ranked in it (the worst possible mean rank).
    """
    ranked = ranks(frame, budget, samplers)
    if ranked.empty:
        return pd.DataFrame()
    table = ranked.pivot_table(index="sampler", columns="category", values="rank", aggfunc="mean")
    table = table[[c for c in category_order(table.columns)]]
    per_category = ranked.groupby("category")
    counts = pd.DataFrame(
        {
            "groups": per_category.apply(lambda part: part.groupby(GROUP_COLUMNS).ngroups),
            "samplers": per_category["sampler"].nunique(),
        }
    ).T
    body = table.sort_values(table.columns[0])
    result = pd.concat([body, counts[table.columns]])
    result.index.name = "sampler"
    result.columns.name = None
    return result


def mean_rank_intervals(
    frame: pd.DataFrame,
    budget: int,
    samplers: Sequence[str],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Tabulate the mean rank with a 90% bootstrap interval per sampler and category.

    The groups of a category are resampled with replacement. The interval treats groups as
    independent, which instances of one BBOB function are not quite, so it is a rough guide to
    which differences exceed the noise.

    Returns:
        Strings ``"mean [5th percentile, 95th percentile]"``, samplers as rows, categories as
        columns.
    """
    ranked = ranks(frame, budget, samplers)
    if ranked.empty:
        return pd.DataFrame()
    rng = np.random.default_rng(seed)
    columns = {}
    for category, part in ranked.groupby("category"):
        table = part.pivot_table(index=GROUP_COLUMNS, columns="sampler", values="rank")
        values = table.to_numpy()
        picks = rng.integers(0, len(values), size=(resamples, len(values)))
        boot = values[picks].mean(axis=1)
        low, high = np.percentile(boot, [5, 95], axis=0)
        means = values.mean(axis=0)
        columns[category] = pd.Series(
            [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, lo, hi in zip(means, low, high)],
            index=table.columns,
        )
    result = pd.DataFrame(columns)
    result = result[[c for c in category_order(result.columns)]]
    order = [s for s in mean_rank_table(frame, budget, samplers).index if s in result.index]
    result = result.loc[order]
    result.index.name = "sampler"
    return result


def category_order(columns: Sequence[str]) -> list[str]:
    """Sort categories as the tables show them: BBOB by dimension, then the others."""

    def key(name: str) -> tuple[int, int, str]:
        if name.startswith("BBOB"):
            return (0, int(name.split()[1].split("-")[0]), name)
        if name == "all":
            return (9, 0, name)
        return (1, 0, name)

    return sorted(columns, key=key)


def final_regret_table(frame: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Compute the median and quartiles of the final regret per problem and sampler."""
    finals = final_rows(frame[frame["budget"] == budget])
    grouped = finals.groupby(["problem", "dimension", "sampler"])["regret"]
    summary = grouped.quantile([0.25, 0.5, 0.75]).unstack()
    summary.columns = ["q25", "median", "q75"]
    summary["runs"] = grouped.count()
    return summary.reset_index()


def median_regret_markdown(
    frame: pd.DataFrame, budget: int, samplers: Sequence[str]
) -> dict[str, str]:
    """Format the median final regret per problem and sampler as one Markdown table per category.

    The lowest median of each row is in bold. Problems without a known optimum are left out.
    """
    finals = final_rows(frame[(frame["budget"] == budget) & frame["regret"].notna()])
    tables = {}
    for category in category_order(list(finals["category"].unique())):
        part = finals[finals["category"] == category]
        wide = part.pivot_table(
            index=["problem", "dimension"], columns="sampler", values="regret", aggfunc="median"
        )
        wide = wide[[s for s in samplers if s in wide.columns]]
        cells = wide.map(lambda value: "" if np.isnan(value) else f"{value:.3g}")
        for row_label, row in wide.iterrows():
            best = row.min()
            for sampler in wide.columns:
                if row[sampler] == best:
                    cells.loc[row_label, sampler] = f"**{cells.loc[row_label, sampler]}**"
        cells.columns.name = None
        tables[category] = to_markdown(cells)
    return tables


def sampler_time_curve(frame: pd.DataFrame, cumulative: bool = False) -> pd.DataFrame:
    """Compute the median and quartiles of the sampler time per sampler, category and trial.

    With ``cumulative``, each run's sampler time is summed over its trials so far first.
    """
    frame = frame.sort_values(["run_id", "trial"])
    seconds = frame["sampler_seconds"]
    if cumulative:
        seconds = seconds.groupby(frame["run_id"]).cumsum()
    frame = frame.assign(seconds=seconds)
    grouped = frame.groupby(["sampler", "category", "trial"])["seconds"]
    result = grouped.quantile([0.25, 0.5, 0.75]).unstack()
    result.columns = ["q25", "median", "q75"]
    return result.reset_index()


def sampler_time_table(frame: pd.DataFrame, windows: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """Tabulate the mean per-trial sampler time in milliseconds per sampler and trial window.

    The mean, not the median, because BaMSOO alternates cheap trials (a cell inherited or chosen
    without the GP) with GP fits, and the mean is what the trials cost together.

    Args:
        frame: Results.
        windows: ``(first, last)`` trial numbers, 1-based and inclusive.
    """
    table = {}
    for first, last in windows:
        part = frame[(frame["trial"] >= first - 1) & (frame["trial"] <= last - 1)]
        table[f"trials {first}-{last}"] = part.groupby("sampler")["sampler_seconds"].mean() * 1e3
    total = frame.groupby(["sampler", "run_id"])["sampler_seconds"].sum().groupby("sampler")
    table["total s"] = total.median()
    return pd.DataFrame(table)


def bamsoo_savings(frame: pd.DataFrame) -> pd.DataFrame:
    """Tabulate the cells BaMSOO scored with its GP instead of evaluating them, per category.

    Gives the median and quartiles at the end of the runs, and the median per evaluation.
    """
    runs = final_rows(frame[frame["sampler"] == "bamsoo"])
    if runs.empty:
        return pd.DataFrame()
    runs = runs.assign(scored=runs["gp_scored_nodes"].fillna(0))
    grouped = runs.groupby(["category", "budget"])["scored"]
    table = grouped.quantile([0.25, 0.5, 0.75]).unstack()
    table.columns = ["q25", "median", "q75"]
    table["runs"] = grouped.count()
    table = table.reset_index()
    # Cells skipped per real evaluation: SOO would have evaluated each of them.
    table["median per evaluation"] = table["median"] / table["budget"]
    order = category_order(list(table["category"].unique()))
    return table.sort_values("category", key=lambda column: column.map(order.index))


def bamsoo_savings_curve(frame: pd.DataFrame) -> pd.DataFrame:
    """Compute the median and quartiles of BaMSOO's cumulative GP-scored nodes per trial."""
    runs = frame[frame["sampler"] == "bamsoo"]
    runs = runs.assign(scored=runs["gp_scored_nodes"].fillna(0))
    grouped = runs.groupby(["category", "budget", "trial"])["scored"]
    result = grouped.quantile([0.25, 0.5, 0.75]).unstack()
    result.columns = ["q25", "median", "q75"]
    return result.reset_index()


def to_markdown(table: pd.DataFrame, float_format: str = "{:.3g}", index: bool = True) -> str:
    """Format a data frame as a GitHub-flavoured Markdown table (no extra dependency)."""
    frame = table.reset_index() if index else table
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, row in frame.iterrows():
        cells = []
        for value in row:
            if isinstance(value, (float, np.floating)):
                cells.append("" if np.isnan(value) else float_format.format(value))
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_quartiles(median: float, q25: float, q75: float) -> str:
    return f"{median:.3g} [{q25:.3g}, {q75:.3g}]"
