"""Load the MMLU questions bundled with optuna_fractal_objectives for lm-eval.

lm-eval imports this file through the ``!function`` tag in ``_template_yaml``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


# objectives/tasks/mmlu_tiny/utils.py -> objectives/data/mmlu
MMLU_DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "mmlu"

# The CSV folders are named after the original MMLU release; lm-eval's split names differ.
SPLIT_FOLDERS = {"dev": "dev", "validation": "val", "test": "test"}
ANSWER_LETTERS = ("A", "B", "C", "D")


def load_mmlu_subject(subject: str, **kwargs: Any) -> Any:
    """Read one MMLU subject into a ``datasets.DatasetDict`` in the cais/mmlu layout.

    Each CSV row is a question, four choices and the answer letter, without a header.
    The records get the fields of the Hugging Face ``cais/mmlu`` dataset: ``question``,
    ``subject``, ``choices`` (a list of four strings) and ``answer`` (an index 0-3).

    Args:
        subject: MMLU subject name, for example ``"world_religions"``.
        **kwargs: Task metadata that lm-eval passes along; ignored.

    Returns:
        A ``DatasetDict`` with the splits ``dev``, ``validation`` and ``test``.

    Raises:
        FileNotFoundError: A CSV file of the subject is missing.
        ValueError: A row does not have six fields or its answer letter is not A-D.
    """
    import datasets

    splits = {}
    for split, folder in SPLIT_FOLDERS.items():
        path = MMLU_DATA_DIR / folder / f"{subject}_{folder}.csv"
        if not path.is_file():
            raise FileNotFoundError(
                f"MMLU file not found: {path}. Reinstall optuna-fractal or copy the "
                f"'{subject}' CSV files into {MMLU_DATA_DIR}."
            )
        splits[split] = datasets.Dataset.from_list(_read_rows(path, subject))
    return datasets.DatasetDict(splits)


def _read_rows(path: Path, subject: str) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8", newline="") as file:
        for line_number, row in enumerate(csv.reader(file), start=1):
            if len(row) != 6 or row[5] not in ANSWER_LETTERS:
                raise ValueError(
                    f"Invalid MMLU row {line_number} in {path}: expected a question, four "
                    f"choices and an answer letter A-D, got {row!r}."
                )
            rows.append(
                {
                    "question": row[0],
                    "subject": subject,
                    "choices": row[1:5],
                    "answer": ANSWER_LETTERS.index(row[5]),
                }
            )
    return rows
