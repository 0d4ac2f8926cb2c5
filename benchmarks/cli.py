"""Command line of the suite: ``python -m benchmarks [COMMAND] [OPTIONS]``.

Without a command, ``run`` is meant: ``python -m benchmarks --quick`` equals
``python -m benchmarks run --quick``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import fnmatch
import logging
from pathlib import Path
import sys

from benchmarks.results import cpu_model


COMMANDS = ("run", "plot", "report", "soo-vs-direct", "sampling-time", "bamsoo-time", "list")
DEFAULT_OUTPUT = Path("results/benchmarks")
# Written by `python -m benchmarks.parallel_workers`.
DEFAULT_WORKERS_CSV = Path("results/parallel_workers.csv")
DOCS_IMAGES = Path("docs/img/benchmarks")

logger = logging.getLogger("benchmarks")


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.suite import default_jobs

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark suite of optuna-fractal. Without a command, 'run' is meant.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a profile (resumable) and draw its plots")
    run.add_argument("--quick", action="store_true", help="same as --profile quick")
    run.add_argument(
        "--profile",
        choices=("tiny", "quick", "full"),
        default=None,
        help="set of problems, seeds and budgets (default: quick)",
    )
    run.add_argument(
        "--samplers",
        nargs="+",
        default=None,
        metavar="NAME",
        help="sampler registry names (default: all of the profile's)",
    )
    run.add_argument(
        "--problems",
        nargs="+",
        default=None,
        metavar="PATTERN",
        help="run only the problems whose label (NAME-dDIMENSION-iINSTANCE, e.g. "
        "bbob-f03-d5-i2) matches one of these shell patterns (default: all)",
    )
    _add_output(run)
    run.add_argument(
        "--jobs",
        type=int,
        default=default_jobs(),
        help="worker processes, at most the number of cores (default: %(default)s)",
    )
    run.add_argument(
        "--force", action="store_true", help="run again the runs that the CSV already has complete"
    )
    run.add_argument("--no-plots", action="store_true", help="skip the plots")

    plot = commands.add_parser("plot", help="draw the plots of an existing results CSV")
    _add_output(plot)
    plot.add_argument(
        "--profile",
        choices=("tiny", "quick", "full"),
        default="quick",
        help="profile whose folder contains the CSV (default: %(default)s)",
    )
    plot.add_argument(
        "--plots-dir",
        type=Path,
        default=None,
        help="folder of the figures (default: OUTPUT/PROFILE/plots)",
    )
    plot.add_argument(
        "--workers-csv",
        type=Path,
        default=DEFAULT_WORKERS_CSV,
        help="parallel-workers CSV with the columns workers, wall_seconds, final_regret and "
        "storage, plotted if it exists (default: %(default)s)",
    )

    report = commands.add_parser("report", help="print Markdown tables of an existing CSV")
    _add_output(report)
    report.add_argument(
        "--profile",
        choices=("tiny", "quick", "full"),
        default="quick",
        help="profile whose folder contains the CSV (default: %(default)s)",
    )

    direct = commands.add_parser(
        "soo-vs-direct", help="SOO beside scipy.optimize.direct at 100 and 300 trials"
    )
    _add_output(direct)
    direct.add_argument(
        "--budgets",
        type=int,
        nargs="+",
        default=[100, 300],
        help="evaluation budgets (default: 100 300)",
    )
    direct.add_argument(
        "--jobs", type=int, default=default_jobs(), help="worker processes (default: %(default)s)"
    )
    direct.add_argument("--force", action="store_true", help="run again even if complete")

    for name, trials, default_problem, text in (
        ("sampling-time", 1000, "rosenbrock:5:1", "SOO beside TPE, sampler time per trial"),
        ("bamsoo-time", 200, "hartmann6", "BaMSOO beside the BO baseline and GPSampler"),
    ):
        timing = commands.add_parser(name, help=f"{text}, advanced in turn in one process")
        _add_output(timing)
        timing.add_argument(
            "--trials", type=int, default=trials, help="trials per sampler (default: %(default)s)"
        )
        timing.add_argument(
            "--problem",
            default=default_problem,
            help="problem as name[:dimension[:instance]] (default: %(default)s)",
        )
        timing.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
        timing.add_argument("--force", action="store_true", help="run again even if complete")
        timing.add_argument(
            "--plots-dir",
            type=Path,
            default=None,
            help="folder of the figure (default: OUTPUT/plots)",
        )

    commands.add_parser("list", help="list profiles and samplers, with the missing ones")
    return parser


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="results folder (default: %(default)s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in (*COMMANDS, "-h", "--help"):
        arguments.insert(0, "run")
    args = build_parser().parse_args(arguments)
    _configure_logging()
    handler = {
        "run": _run,
        "plot": _plot,
        "report": _report,
        "soo-vs-direct": _soo_vs_direct,
        "sampling-time": _timing,
        "bamsoo-time": _timing,
        "list": _list,
    }[args.command]
    try:
        return handler(args)
    except ValueError as error:
        logger.error("%s", error)
        return 2


def _configure_logging() -> None:
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _run(args: argparse.Namespace) -> int:
    from benchmarks import analysis
    from benchmarks.profiles import get_profile
    from benchmarks.samplers import split_available
    from benchmarks.suite import run_suite

    profile_name = "quick" if args.quick else (args.profile or "quick")
    if args.quick and args.profile not in (None, "quick"):
        raise ValueError(f"--quick contradicts --profile {args.profile}; give one of them.")
    profile = get_profile(profile_name)
    requested = tuple(args.samplers or profile.samplers)
    available, missing = split_available(requested)
    for reason in missing.values():
        logger.warning("Skipping sampler %s", reason)
    if not available:
        raise ValueError(f"None of the samplers {list(requested)} can run here.")
    folder = args.output / profile.name
    csv_path = folder / "results.csv"
    tasks = profile.tasks(available)
    if args.problems:
        tasks = [
            task
            for task in tasks
            if any(fnmatch.fnmatchcase(task.problem.label, p) for p in args.problems)
        ]
        if not tasks:
            raise ValueError(
                f"No problem of profile {profile.name} matches {args.problems}; "
                "patterns match labels such as bbob-f03-d5-i2 or branin-d2-i1."
            )
    summary = run_suite(tasks, csv_path, jobs=args.jobs, force=args.force)
    frame = analysis.load_results(csv_path)
    if not args.no_plots and not frame.empty:
        from benchmarks.plots import plot_all

        paths = plot_all(frame, folder / "plots", available)
        logger.info("Wrote %d figure files to %s.", len(paths), folder / "plots")
    if not frame.empty:
        print(_rank_report(frame, available))
    if missing:
        print("\nMissing samplers (not run):")
        for reason in missing.values():
            print(f"  {reason}")
    if summary.failed:
        print(f"\n{len(summary.failed)} runs failed:")
        for outcome in summary.failed:
            print(f"  {outcome.task.label}: {outcome.error.strip().splitlines()[-1]}")
        return 1
    return 0


def _rank_report(frame, samplers: Sequence[str]) -> str:  # noqa: ANN001
    from benchmarks import analysis

    parts = []
    for budget in sorted(frame["budget"].unique()):
        present = [s for s in samplers if s in set(frame[frame["budget"] == budget]["sampler"])]
        table = analysis.mean_rank_table(frame, int(budget), present)
        if table.empty:
            continue
        parts.append(
            f"\nMean rank of the final best value at {budget} evaluations "
            "(1 = best; last rows: groups and samplers per column):\n"
        )
        parts.append(analysis.to_markdown(table, "{:.2f}"))
        intervals = analysis.mean_rank_intervals(frame, int(budget), present)
        parts.append("\nThe same with 90% bootstrap intervals over groups:\n")
        parts.append(analysis.to_markdown(intervals.fillna("")))
    return "\n".join(parts)


def _plot(args: argparse.Namespace) -> int:
    from benchmarks import analysis
    from benchmarks.plots import plot_all
    from benchmarks.samplers import REGISTRY

    folder = args.output / args.profile
    frame = analysis.load_results(folder / "results.csv")
    if frame.empty:
        raise ValueError(f"{folder / 'results.csv'} has no complete runs; run the profile first.")
    plots_dir = args.plots_dir or folder / "plots"
    samplers = [name for name in REGISTRY if name in set(frame["sampler"])]
    workers_csv = args.workers_csv
    paths = plot_all(frame, plots_dir, samplers, workers_csv)
    if not workers_csv.exists():
        logger.info("No parallel-workers CSV at %s; its plot is skipped.", workers_csv)
    for path in paths:
        print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
    from benchmarks import analysis
    from benchmarks.samplers import REGISTRY

    csv_path = args.output / args.profile / "results.csv"
    frame = analysis.load_results(csv_path)
    if frame.empty:
        raise ValueError(f"{csv_path} has no complete runs; run the profile first.")
    samplers = [name for name in REGISTRY if name in set(frame["sampler"])]
    print(f"Machine: {cpu_model()}, results from {csv_path}")
    print(_rank_report(frame, samplers))
    for budget in sorted(frame["budget"].unique()):
        part = frame[frame["budget"] == budget]
        print(f"\nMean per-trial sampler time [ms] at budget {budget}, by category:\n")
        time_table = part.groupby(["sampler", "category"])["sampler_seconds"].mean().unstack()
        time_table = time_table.loc[[s for s in samplers if s in time_table.index]]
        time_table = time_table[analysis.category_order(list(time_table.columns))]
        time_table.columns.name = None
        print(analysis.to_markdown(time_table * 1e3, "{:.3g}"))
    savings = analysis.bamsoo_savings(frame)
    if not savings.empty:
        print("\nCells BaMSOO scored with the GP instead of evaluating them (final, per run):\n")
        print(analysis.to_markdown(savings, "{:.3g}", index=False))
    for budget in sorted(frame["budget"].unique()):
        print(f"\nMedian final regret at budget {budget}, per category (best in bold):\n")
        medians = analysis.median_regret_markdown(frame, int(budget), samplers)
        for category, table in medians.items():
            print(f"{category}:\n\n{table}\n")

    print("\nFinal regret, median [q25, q75] over runs:\n")
    for budget in sorted(frame["budget"].unique()):
        summary = analysis.final_regret_table(frame, int(budget))
        summary["cell"] = [
            analysis.format_quartiles(m, a, b)
            for m, a, b in zip(summary["median"], summary["q25"], summary["q75"])
        ]
        wide = summary.pivot_table(
            index=["problem", "dimension"], columns="sampler", values="cell", aggfunc="first"
        )
        wide = wide[[s for s in samplers if s in wide.columns]]
        print(f"Budget {budget}:\n")
        print(analysis.to_markdown(wide))
        print()
    return 0


def _soo_vs_direct(args: argparse.Namespace) -> int:
    from benchmarks import analysis
    from benchmarks.samplers import split_available
    from benchmarks.studies import SOO_DIRECT_SAMPLERS
    from benchmarks.studies import soo_vs_direct

    available, missing = split_available(SOO_DIRECT_SAMPLERS)
    if missing:
        raise ValueError("; ".join(missing.values()))
    table = soo_vs_direct(
        args.output / "soo_direct.csv", budgets=args.budgets, jobs=args.jobs, force=args.force
    )
    print("\nFinal regret per problem instance (Rosenbrock-5: 3 shifted instances):\n")
    print(analysis.to_markdown(table, "{:.3g}"))
    return 0


def _timing(args: argparse.Namespace) -> int:
    from benchmarks import analysis
    from benchmarks.plots import plot_timing_study
    from benchmarks.problems import parse_problem
    from benchmarks.samplers import split_available
    from benchmarks.studies import bamsoo_time_study
    from benchmarks.studies import sampling_time_study
    from benchmarks.studies import side_by_side_timing

    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}.")
    make = sampling_time_study if args.command == "sampling-time" else bamsoo_time_study
    study = make(args.trials, parse_problem(args.problem))
    available, missing = split_available(study.samplers)
    if missing:
        raise ValueError("; ".join(missing.values()))
    csv_path = args.output / f"{study.name}.csv"
    table = side_by_side_timing(study, csv_path, seed=args.seed, force=args.force)
    print(
        f"\n{study.problem.label}, seed {args.seed}, {study.trials} trials per sampler, "
        f"advanced in turn in one process on {cpu_model()}."
    )
    print("Mean sampler time per trial [ms] (ask + tell) per trial window; total in seconds:\n")
    print(analysis.to_markdown(table, "{:.3g}"))
    frame = analysis.load_results(csv_path)
    frame = frame[
        frame["sampler"].isin(study.samplers)
        & (frame["budget"] == study.trials)
        & (frame["problem"] == study.problem.name)
    ]
    plot_timing_study(frame, args.plots_dir or args.output / "plots", stem=study.name)
    return 0


def _list(args: argparse.Namespace) -> int:
    from benchmarks.problems import llm_available
    from benchmarks.profiles import PROFILES
    from benchmarks.samplers import REGISTRY

    print("Profiles:")
    for name, make in PROFILES.items():
        profile = make()
        print(f"  {name}: {profile.description} ({len(profile.tasks())} runs)")
    print("Samplers:")
    for name, entry in REGISTRY.items():
        reason = entry.unavailable_reason()
        print(f"  {name:9s} {entry.label:24s} {'available' if reason is None else reason}")
    reason = llm_available()
    print(f"Problem llm-cpu: {'available' if reason is None else reason}")
    return 0
