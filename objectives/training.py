"""Fine-tune a LitGPT model with LoRA in the calling process.

This replaces ``litgpt.finetune.lora.setup``, which (litgpt 0.5.13) records its
hyperparameters by re-parsing ``sys.argv``: inside another program it either exits with
"Unrecognized arguments" or records the CLI defaults, and its final merge then uses the
recorded alpha, not the one it trained with. Here the rank and alpha of the model that
is trained are the ones :func:`merge_adapter` checks and merges.

The loop follows ``litgpt.finetune.lora.fit``: AdamW on the LoRA weights only, gradient
accumulation, chunked cross-entropy, and a linear warm-up followed by cosine decay to 0.
The warm-up here accepts 0 steps, which makes LitGPT's scheduler divide by zero.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import contextlib
from dataclasses import dataclass
from dataclasses import field
import math
from pathlib import Path
from typing import Any

import torch

from .config import LoRALayersConfig
from .config import TrainConfig


IGNORE_INDEX = -100


class NonFiniteLossError(RuntimeError):
    """The training or validation loss became NaN or infinite."""


@dataclass(frozen=True)
class PrecisionSettings:
    """The weight dtype and the autocast dtype (None: no autocast) of a precision name."""

    param_dtype: torch.dtype
    autocast_dtype: torch.dtype | None

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """Return the autocast context for ``device``, or a no-op context."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)


@dataclass
class FineTuneResult:
    """Outcome of :func:`fine_tune`.

    Attributes:
        steps: Optimizer steps taken.
        train_loss: Mean training loss of the micro-batches of the last step.
        val_losses: ``(step, validation loss)`` of every intermediate evaluation.
        trainable_parameters: Number of LoRA weights trained.
    """

    steps: int = 0
    train_loss: float = float("nan")
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    trainable_parameters: int = 0


def resolve_device(accelerator: str) -> torch.device:
    """Map ``"auto"``, ``"cpu"`` or ``"cuda"`` to a device.

    Raises:
        RuntimeError: ``"cuda"`` was requested but CUDA is not available.
    """
    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(
            "train.accelerator is 'cuda' but torch.cuda.is_available() is False; install "
            "a CUDA build of torch or set train.accelerator to 'cpu'."
        )
    return torch.device("cuda", torch.cuda.current_device())


def precision_settings(precision: str) -> PrecisionSettings:
    """Map a LitGPT precision name to weight and autocast dtypes."""
    if precision == "32-true":
        return PrecisionSettings(torch.float32, None)
    if precision == "bf16-true":
        return PrecisionSettings(torch.bfloat16, None)
    if precision == "bf16-mixed":
        return PrecisionSettings(torch.float32, torch.bfloat16)
    raise ValueError(f"Unsupported precision {precision!r}; use 32-true, bf16-true or bf16-mixed.")


def build_lora_model(
    model_config_file: Path,
    base_state_dict: Mapping[str, torch.Tensor],
    hyperparameters: Mapping[str, Any],
    layers: LoRALayersConfig,
    device: torch.device,
    precision: PrecisionSettings,
    seed: int,
    max_seq_length: int,
) -> torch.nn.Module:
    """Create a ``litgpt.lora.GPT`` with the base weights and untrained adapters.

    Only the LoRA weights are trainable. LoRA's B matrices start at zero, so the new
    model computes exactly what the base model computes; this is checked here.

    Args:
        model_config_file: ``model_config.yaml`` of the base checkpoint.
        base_state_dict: The base weights.
        hyperparameters: ``lora_r``, ``lora_alpha`` and ``lora_dropout`` are used.
        layers: The weights that get adapters.
        device: Where the model lives.
        precision: The weight dtype.
        seed: Seed of the LoRA A initialisation.
        max_seq_length: Maximum sequence length in tokens; at most the context length.

    Returns:
        The model, in training mode.

    Raises:
        RuntimeError: The base weights do not fit the model config.
    """
    from litgpt.lora import Config
    from litgpt.lora import GPT
    from litgpt.lora import mark_only_lora_as_trainable

    config = Config.from_file(
        model_config_file,
        lora_r=int(hyperparameters["lora_r"]),
        lora_alpha=hyperparameters["lora_alpha"],
        lora_dropout=float(hyperparameters["lora_dropout"]),
        lora_query=layers.query,
        lora_key=layers.key,
        lora_value=layers.value,
        lora_projection=layers.projection,
        lora_mlp=layers.mlp,
        lora_head=layers.head,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = GPT(config)
    incompatible = model.load_state_dict(base_state_dict, strict=False)
    missing = [name for name in incompatible.missing_keys if "lora_" not in name]
    if missing or incompatible.unexpected_keys:
        raise RuntimeError(
            f"The base weights do not match {model_config_file}: missing {missing[:5]}, "
            f"unexpected {incompatible.unexpected_keys[:5]}."
        )
    model.to(dtype=precision.param_dtype)
    mark_only_lora_as_trainable(model)
    model.max_seq_length = max_seq_length
    check_adapters_are_zero(model)
    model.train()
    return model


def build_base_model(
    model_config_file: Path,
    base_state_dict: Mapping[str, torch.Tensor],
    device: torch.device,
    precision: PrecisionSettings,
    max_seq_length: int,
) -> torch.nn.Module:
    """Create a plain ``litgpt.GPT`` with the base weights, in evaluation mode."""
    from litgpt import Config
    from litgpt import GPT

    config = Config.from_file(model_config_file)
    with torch.device(device):
        model = GPT(config)
    model.load_state_dict(base_state_dict, strict=True)
    model.to(dtype=precision.param_dtype)
    model.max_seq_length = max_seq_length
    model.eval()
    return model


def check_adapters_are_zero(model: torch.nn.Module) -> None:
    """Raise RuntimeError unless every LoRA B matrix of ``model`` is zero.

    With B = 0 the adapter adds nothing, so an untrained or unchanged adapter cannot
    move the score away from the base model's.
    """
    for name, parameter in model.named_parameters():
        if name.endswith("lora_B") and bool(torch.any(parameter != 0)):
            raise RuntimeError(
                f"Internal error: {name} is not zero before training, so the untrained "
                "adapter would change the base model."
            )


def merge_adapter(model: torch.nn.Module, hyperparameters: Mapping[str, Any]) -> None:
    """Merge the LoRA weights of ``model`` into its base weights, in place.

    Before merging, every adapter is checked to have the trial's rank and alpha, so the
    merged weights are ``W + (alpha / r) * B A`` with the values the adapter was
    trained with.

    Raises:
        RuntimeError: An adapter has another rank, alpha or scaling.
    """
    from litgpt.lora import LoRALinear
    from litgpt.lora import merge_lora_weights

    rank = int(hyperparameters["lora_r"])
    alpha = hyperparameters["lora_alpha"]
    for name, module in model.named_modules():
        if not isinstance(module, LoRALinear) or module.r == 0:
            continue
        if (
            module.r != rank
            or module.lora_alpha != alpha
            or not math.isclose(module.scaling, alpha / rank)
        ):
            raise RuntimeError(
                f"Internal error: adapter {name} has r={module.r}, alpha={module.lora_alpha}, "
                f"scaling={module.scaling}, but the trial trained with r={rank}, alpha={alpha}."
            )
    merge_lora_weights(model)


def learning_rate_factor(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Return the factor of the peak learning rate before optimizer step ``step`` (0-based).

    The factor rises linearly to 1 over ``warmup_steps`` steps, then follows a cosine
    from 1 towards 0 at ``total_steps``.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def total_steps(config: TrainConfig, batches_per_epoch: int) -> int:
    """Return the number of optimizer steps that ``config`` requests."""
    steps_per_epoch = max(1, batches_per_epoch // config.gradient_accumulation_steps)
    limits = []
    if config.epochs is not None:
        limits.append(config.epochs * steps_per_epoch)
    if config.max_steps is not None:
        limits.append(config.max_steps)
    return min(limits)


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module,
    loader: Any,
    device: torch.device,
    precision: PrecisionSettings,
    max_batches: int | None = None,
) -> float:
    """Return the mean cross-entropy per target token over ``loader``.

    Tokens labelled ``-100`` (padding, and the prompt when ``data.mask_prompt`` is
    set) are not counted. The model is left in the mode it was in.

    Raises:
        NonFiniteLossError: The loss is NaN or infinite.
    """
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    for index, batch in enumerate(loader):
        if max_batches is not None and index >= max_batches:
            break
        input_ids = batch["input_ids"].to(device)
        targets = batch["labels"].to(device)[:, 1:]
        with precision.autocast(device):
            logits = model(input_ids)[:, :-1, :]
        loss_sum = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)),
            targets.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        total += loss_sum.double().cpu()
        count += int((targets != IGNORE_INDEX).sum())
    model.train(was_training)
    value = float(total / max(1, count))
    if not math.isfinite(value):
        raise NonFiniteLossError(f"The validation loss is {value}.")
    return value


def fine_tune(
    model: torch.nn.Module,
    train_loader: Any,
    val_loader: Any,
    config: TrainConfig,
    hyperparameters: Mapping[str, Any],
    device: torch.device,
    precision: PrecisionSettings,
    on_validation: Callable[[int, float], None] | None = None,
) -> FineTuneResult:
    """Train the LoRA weights of ``model`` in place.

    Args:
        model: A model from :func:`build_lora_model`.
        train_loader: Batches of ``input_ids`` and ``labels``.
        val_loader: The validation batches.
        config: Steps, batch sizes, warm-up and evaluation interval.
        hyperparameters: ``learning_rate`` and ``weight_decay`` are used.
        device: The model's device.
        precision: The autocast setting.
        on_validation: Called with ``(step, validation loss)`` every
            ``config.eval_interval`` steps (and at step 0 if
            ``config.initial_validation``). It may raise, for example
            ``optuna.TrialPruned``, to stop training.

    Returns:
        Steps, last training loss and the validation losses.

    Raises:
        NonFiniteLossError: A training or validation loss is NaN or infinite.
    """
    from litgpt.utils import chunked_cross_entropy

    if len(train_loader) == 0:
        raise ValueError(
            "The training split is empty; use more data or a smaller val_split_fraction."
        )
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    result = FineTuneResult(trainable_parameters=sum(p.numel() for p in trainable))
    optimizer = torch.optim.AdamW(
        trainable,
        lr=float(hyperparameters["learning_rate"]),
        weight_decay=float(hyperparameters["weight_decay"]),
    )
    steps = total_steps(config, len(train_loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, learning_rate_factor(config.lr_warmup_steps, steps)
    )
    accumulation = config.gradient_accumulation_steps

    def evaluate(step: int) -> None:
        loss = validation_loss(model, val_loader, device, precision, config.eval_max_batches)
        result.val_losses.append((step, loss))
        if on_validation is not None:
            on_validation(step, loss)

    if config.initial_validation:
        evaluate(0)

    model.train()
    micro_losses: list[torch.Tensor] = []
    micro_step = 0
    while result.steps < steps:
        for batch in train_loader:
            input_ids = batch["input_ids"].to(device)
            targets = batch["labels"].to(device)
            with precision.autocast(device):
                logits = model(input_ids, lm_head_chunk_size=128)
                # Output n predicts token n + 1.
                logits[-1] = logits[-1][..., :-1, :]
                loss = chunked_cross_entropy(logits, targets[..., 1:])
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"The training loss is {loss.item()} at step {result.steps + 1} of {steps}."
                )
            (loss / accumulation).backward()
            micro_losses.append(loss.detach())
            micro_step += 1
            if micro_step % accumulation != 0:
                continue

            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            result.steps += 1
            result.train_loss = float(torch.stack(micro_losses).mean())
            micro_losses.clear()
            if result.steps % config.eval_interval == 0 and result.steps < steps:
                evaluate(result.steps)
            if result.steps >= steps:
                break
    return result
