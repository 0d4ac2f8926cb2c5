"""Check and load LitGPT base checkpoints, and save the adapter of a trial.

Only local folders are accepted. LitGPT's own entry points treat a path that does not
exist as a Hugging Face repository id and try to download it, so this module never hands
them a path it has not checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
import shutil
from typing import Any

import yaml

from .config import LoRALayersConfig


MODEL_FILE = "lit_model.pth"
ADAPTER_FILE = "lit_model.pth.lora"
_FILES_TO_COPY = (
    "model_config.yaml",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
)


class CheckpointNotFoundError(FileNotFoundError):
    """The base checkpoint folder is missing or lacks a required file."""


def validate_checkpoint_dir(checkpoint_dir: Path) -> None:
    """Raise :class:`CheckpointNotFoundError` unless ``checkpoint_dir`` is a complete checkpoint.

    A complete folder has ``lit_model.pth``, ``model_config.yaml`` and ``tokenizer.json``
    or ``tokenizer.model``.

    Args:
        checkpoint_dir: Absolute path of the folder.
    """
    if not checkpoint_dir.is_dir():
        raise CheckpointNotFoundError(
            f"Base checkpoint folder not found: {checkpoint_dir}. Download the model with "
            "`litgpt download <repo id> --checkpoint_dir <folder>` and point "
            "model.checkpoint_dir at the folder that contains lit_model.pth."
        )
    missing = [
        name for name in (MODEL_FILE, "model_config.yaml") if not (checkpoint_dir / name).is_file()
    ]
    if (
        not (checkpoint_dir / "tokenizer.json").is_file()
        and not (checkpoint_dir / "tokenizer.model").is_file()
    ):
        missing.append("tokenizer.json or tokenizer.model")
    if missing:
        raise CheckpointNotFoundError(
            f"Base checkpoint folder {checkpoint_dir} is missing {', '.join(missing)}. "
            "`litgpt download` writes these files; rerun it or fix model.checkpoint_dir."
        )


def load_base_state_dict(checkpoint_dir: Path) -> dict[str, Any]:
    """Load the base weights memory-mapped on the CPU.

    Args:
        checkpoint_dir: A folder that passed :func:`validate_checkpoint_dir`.

    Returns:
        The state dict of ``lit_model.pth``.
    """
    import torch

    state = torch.load(
        checkpoint_dir / MODEL_FILE, map_location="cpu", mmap=True, weights_only=True
    )
    # Checkpoints written by Lightning Fabric nest the weights under "model".
    return state.get("model", state)


def save_trial_checkpoint(
    model: Any,
    folder: Path,
    base_checkpoint_dir: Path,
    hyperparameters: Mapping[str, Any],
    layers: LoRALayersConfig,
    precision: str,
    include_merged: bool,
) -> None:
    """Save the LoRA weights of a trial in the folder layout of ``litgpt finetune lora``.

    ``hyperparameters.yaml`` records the rank and alpha that the adapter was trained
    with, so ``litgpt merge_lora <folder>`` rebuilds the same merged model.

    Args:
        model: The fine-tuned ``litgpt.lora.GPT``, merged or not.
        folder: The trial folder, created if missing.
        base_checkpoint_dir: The base model's folder; its config and tokenizer files are
            copied.
        hyperparameters: The trial's values of the five hyperparameters.
        layers: The weights that have LoRA adapters.
        precision: The training precision, recorded for ``litgpt merge_lora``.
        include_merged: If True, also save the merged weights as ``lit_model.pth``. The
            model must have been merged.
    """
    from litgpt.lora import lora_filter
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    adapter = {name: value.cpu() for name, value in state.items() if lora_filter(name, value)}
    torch.save({"model": adapter}, folder / ADAPTER_FILE)

    for name in _FILES_TO_COPY:
        source = base_checkpoint_dir / name
        if source.is_file():
            shutil.copy(source, folder / name)

    record = {
        "checkpoint_dir": str(base_checkpoint_dir),
        "precision": precision,
        "lora_r": int(hyperparameters["lora_r"]),
        "lora_alpha": hyperparameters["lora_alpha"],
        "lora_dropout": float(hyperparameters["lora_dropout"]),
        "lora_query": layers.query,
        "lora_key": layers.key,
        "lora_value": layers.value,
        "lora_projection": layers.projection,
        "lora_mlp": layers.mlp,
        "lora_head": layers.head,
        "learning_rate": float(hyperparameters["learning_rate"]),
        "weight_decay": float(hyperparameters["weight_decay"]),
    }
    with open(folder / "hyperparameters.yaml", "w", encoding="utf-8") as file:
        yaml.safe_dump(record, file, sort_keys=False)

    if include_merged:
        # Same layout as litgpt.scripts.merge_lora: plain weights, no LoRA tensors.
        merged = {
            name.replace("linear.", ""): value.cpu()
            for name, value in state.items()
            if not lora_filter(name, value)
        }
        torch.save(merged, folder / MODEL_FILE)
