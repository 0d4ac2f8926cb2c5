"""Build, pre-train and cache the tiny LLaMA-shaped base model of the CPU default.

The model is a LitGPT ``Config`` with RMSNorm, rotary embeddings, a SwiGLU MLP and no
biases (the LLaMA layout), scaled down to a few hundred thousand parameters. Its
tokenizer is a byte-level BPE trained with the ``tokenizers`` library on the same text
that pre-trains the model, so nothing is downloaded.

Builds are cached in ``<cache_dir>/base-models/tiny-<key>``, where the key hashes the
settings, the pre-training text and the versions of torch and litgpt. Workers that
start at once take a file lock, so one of them builds while the others wait, and the
finished folder appears through an atomic rename, so a reader never sees a partial one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Any

import optuna

from .config import TinyModelConfig
from .instruction_data import load_alpaca_records


_logger = optuna.logging.get_logger(__name__)

# Increase when a change to this module changes the built model.
BUILD_FORMAT_VERSION = 1
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
_COMPLETE_MARKER = "build.json"
# Pre-training uses the AdamW settings of LitGPT's pretrain script (litgpt 0.5.13).
_PRETRAIN_BETAS = (0.9, 0.95)
_PRETRAIN_WEIGHT_DECAY = 0.1
_PRETRAIN_WARMUP_FRACTION = 0.1
_PRETRAIN_MIN_LR_RATIO = 0.1


def ensure_tiny_model(spec: TinyModelConfig, cache_dir: Path) -> Path:
    """Return the checkpoint folder of the tiny model, building it on first use.

    Args:
        spec: Architecture and pre-training settings.
        cache_dir: Cache root; the model goes to ``<cache_dir>/base-models``.

    Returns:
        A LitGPT checkpoint folder with ``lit_model.pth``, ``model_config.yaml``,
        ``tokenizer.json``, ``tokenizer_config.json`` and ``build.json``.

    Raises:
        FileNotFoundError: ``spec.pretrain_data`` does not exist.
    """
    from filelock import FileLock

    if not spec.pretrain_data.is_file():
        raise FileNotFoundError(
            f"Pre-training data of the tiny model not found: {spec.pretrain_data}. Fix "
            "model.tiny.pretrain_data in the config."
        )
    root = cache_dir / "base-models"
    key = _build_key(spec)
    target = root / f"tiny-{key}"
    if (target / _COMPLETE_MARKER).is_file():
        return target

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"tiny-{key}.lock")):
        # Another worker may have finished the build while this one waited for the lock.
        if (target / _COMPLETE_MARKER).is_file():
            return target
        _logger.info(f"Building the tiny base model in {target} (first use of these settings).")
        staging = Path(tempfile.mkdtemp(prefix=f".tiny-{key}-", dir=root))
        try:
            _build(spec, staging, key)
            if target.exists():
                # A folder without the marker is left over from an interrupted build.
                shutil.rmtree(target)
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _build_key(spec: TinyModelConfig) -> str:
    import litgpt
    import torch

    settings = dataclasses.asdict(spec)
    settings["pretrain_data"] = hashlib.sha256(spec.pretrain_data.read_bytes()).hexdigest()
    settings["format"] = BUILD_FORMAT_VERSION
    settings["torch"] = torch.__version__
    settings["litgpt"] = getattr(litgpt, "__version__", "unknown")
    encoded = json.dumps(settings, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def _documents(spec: TinyModelConfig) -> list[str]:
    records = load_alpaca_records(spec.pretrain_data)
    documents = []
    for record in records:
        parts = [record["instruction"], record.get("input", ""), record["output"]]
        documents.append("\n".join(part for part in parts if part))
    return documents


def _train_tokenizer(documents: list[str], vocab_size: int, folder: Path) -> Any:
    from tokenizers import decoders
    from tokenizers import models
    from tokenizers import pre_tokenizers
    from tokenizers import Tokenizer
    from tokenizers import trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    # litgpt.tokenizer.Tokenizer reads the special tokens and add_bos_token from here.
    tokenizer_config = {
        "add_bos_token": True,
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    return tokenizer


def _model_config(spec: TinyModelConfig, vocab_size: int, key: str) -> Any:
    from litgpt import Config

    return Config(
        name=f"tiny-llama-{key}",
        block_size=spec.block_size,
        vocab_size=vocab_size,
        padding_multiple=64,
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        n_query_groups=spec.n_head,
        n_embd=spec.n_embd,
        rotary_percentage=1.0,
        parallel_residual=False,
        bias=False,
        norm_class_name="RMSNorm",
        norm_eps=1e-5,
        mlp_class_name="LLaMAMLP",
        intermediate_size=spec.intermediate_size,
    )


def _build(spec: TinyModelConfig, folder: Path, key: str) -> None:
    from litgpt import GPT
    from litgpt.utils import save_config
    import torch

    start = time.perf_counter()
    documents = _documents(spec)
    tokenizer = _train_tokenizer(documents, spec.vocab_size, folder)
    config = _model_config(spec, tokenizer.get_vocab_size(), key)
    save_config(config, folder)

    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    stream: list[int] = []
    for encoding in tokenizer.encode_batch(documents):
        stream.extend([bos_id, *encoding.ids, eos_id])
    tokens = torch.tensor(stream, dtype=torch.long)
    if len(tokens) <= spec.block_size + 1:
        raise ValueError(
            f"The pre-training data {spec.pretrain_data} has {len(tokens)} tokens, fewer than "
            f"one block of {spec.block_size}; use more text or a smaller model.tiny.block_size."
        )

    generator = torch.Generator().manual_seed(spec.seed)
    torch.manual_seed(spec.seed)
    model = GPT(config)
    model.apply(model._init_weights)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=spec.pretrain_learning_rate,
        betas=_PRETRAIN_BETAS,
        weight_decay=_PRETRAIN_WEIGHT_DECAY,
    )
    warmup = max(1, int(_PRETRAIN_WARMUP_FRACTION * spec.pretrain_steps))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, spec.pretrain_steps - warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return _PRETRAIN_MIN_LR_RATIO + (1 - _PRETRAIN_MIN_LR_RATIO) * cosine

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    model.train()
    losses: list[float] = []
    for _ in range(spec.pretrain_steps):
        starts = torch.randint(
            0, len(tokens) - spec.block_size - 1, (spec.pretrain_batch_size,), generator=generator
        )
        windows = torch.stack([tokens[start : start + spec.block_size + 1] for start in starts])
        logits = model(windows[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), windows[:, 1:].reshape(-1)
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        losses.append(loss.item())

    torch.save(model.state_dict(), folder / "lit_model.pth")
    seconds = time.perf_counter() - start
    tail = losses[-20:]
    final_loss = sum(tail) / len(tail) if tail else float("nan")
    record = {
        "settings": {
            name: str(value) if isinstance(value, Path) else value
            for name, value in dataclasses.asdict(spec).items()
        },
        "key": key,
        "format": BUILD_FORMAT_VERSION,
        "vocab_size": config.vocab_size,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "pretrain_tokens": len(tokens),
        "final_pretrain_loss": final_loss,
        "build_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
    }
    # Written last: its presence marks a complete build.
    (folder / _COMPLETE_MARKER).write_text(json.dumps(record, indent=2))
    _logger.info(
        f"Built the tiny base model in {seconds:.1f} s: {record['parameters']:,} parameters, "
        f"final pre-training loss {final_loss:.3f}."
    )
