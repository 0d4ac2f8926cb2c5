"""Load Alpaca-format instruction data, split it and wrap it in LitGPT data loaders.

The records are formatted and tokenized by LitGPT's ``SFTDataset`` and batched by its
``get_sft_collate_fn``, the same pieces that ``litgpt.data.JSON`` uses, but the split and
the loaders are built here so that the number of loader workers and the seeds come from
the objective's config (``litgpt.data.JSON`` starts 4 worker processes by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import json
from pathlib import Path
import random
from typing import Any

from .config import DataConfig


@dataclass(frozen=True)
class InstructionSplits:
    """Training and validation records of one data file."""

    train: list[dict[str, str]]
    val: list[dict[str, str]]


def load_alpaca_records(path: Path) -> list[dict[str, str]]:
    """Read a JSON list or a JSONL file of Alpaca records.

    Args:
        path: The file. Each record needs string fields ``instruction`` and ``output``;
            ``input`` is optional.

    Returns:
        The records, with a missing ``input`` set to ``""``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not valid JSON or a record lacks a required field.
    """
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: {path}. Fix data.path in the config.")
    try:
        with open(path, encoding="utf-8") as file:
            if path.suffix == ".jsonl":
                records = [json.loads(line) for line in file if line.strip()]
            else:
                records = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"Invalid JSON in data file {path}: {error}") from error
    if not isinstance(records, list) or not records:
        raise ValueError(f"Data file {path} must contain a non-empty list of records.")

    cleaned = []
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not all(
            isinstance(record.get(key), str) for key in ("instruction", "output")
        ):
            raise ValueError(
                f"Record {index} of {path} must be an object with string fields "
                f"'instruction' and 'output', got {record!r}."
            )
        cleaned.append({**record, "input": record.get("input") or ""})
    return cleaned


def split_records(records: Sequence[dict[str, str]], config: DataConfig) -> InstructionSplits:
    """Shuffle ``records`` with ``config.seed`` and hold out ``config.val_split_fraction``.

    Args:
        records: The records of one file.
        config: The data settings.

    Returns:
        At least one validation and one training record.

    Raises:
        ValueError: There are fewer than two records.
    """
    if len(records) < 2:
        raise ValueError(
            f"{config.path} has {len(records)} record(s); a training and a validation split "
            "need at least 2."
        )
    order = list(range(len(records)))
    random.Random(config.seed).shuffle(order)
    n_val = min(len(records) - 1, max(1, round(config.val_split_fraction * len(records))))
    return InstructionSplits(
        train=[records[index] for index in order[n_val:]],
        val=[records[index] for index in order[:n_val]],
    )


def make_loader(
    records: list[dict[str, str]],
    tokenizer: Any,
    config: DataConfig,
    max_seq_length: int,
    batch_size: int,
    shuffle: bool,
) -> Any:
    """Wrap ``records`` in a ``DataLoader`` of padded ``input_ids`` and ``labels`` batches.

    Args:
        records: Alpaca records.
        tokenizer: A ``litgpt.tokenizer.Tokenizer``.
        config: The data settings (prompt style, prompt masking, workers, seed).
        max_seq_length: Examples are truncated to this many tokens.
        batch_size: Examples per batch.
        shuffle: If True, batches are drawn in an order seeded by ``config.seed``.

    Returns:
        A ``torch.utils.data.DataLoader``.
    """
    from litgpt.data import get_sft_collate_fn
    from litgpt.data import SFTDataset
    from litgpt.prompts import PromptStyle
    import torch

    dataset = SFTDataset(
        data=records,
        tokenizer=tokenizer,
        prompt_style=PromptStyle.from_name(config.prompt_style),
        max_seq_length=max_seq_length,
        mask_prompt=config.mask_prompt,
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(config.seed) if shuffle else None,
        num_workers=config.num_workers,
        collate_fn=get_sft_collate_fn(max_seq_length=max_seq_length),
    )
