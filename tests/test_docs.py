"""The documentation site builds in strict mode and the public examples run."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import textwrap

import optuna
import pytest

import optuna_fractal


REPO = Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which(
        "mkdocs"
    )
    assert mkdocs is not None, (
        'mkdocs is missing: install the docs extra (pip install -e ".[docs]")'
    )
    result = subprocess.run(
        [mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "Simultaneous Optimistic Optimization" in api
    assert "Bayesian Multi-Scale Optimistic Optimization" in api


_PUBLIC = ["SOOSampler", "BaMSOOSampler", "LHSSampler", "bo_baseline", "get_tree"]


@pytest.mark.parametrize("name", _PUBLIC)
def test_docstring_example_runs(name: str) -> None:
    doc = inspect.getdoc(getattr(optuna_fractal, name)) or ""
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert blocks, f"{name} has no runnable Example"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for block in blocks:
        code = compile(textwrap.dedent(block), f"<{name} example>", "exec")
        exec(code, {"__name__": "__example__"})
