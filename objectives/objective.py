"""The Optuna objective that fine-tunes a LitGPT model with LoRA and scores the result.

One call of :class:`LoRAObjective` is one trial: sample the hyperparameters, train the
LoRA weights of the base model in this process, merge them, compute the validation loss
and run the lm-eval tasks on the merged model, then return the configured metric.
"""

from __future__ import annotations

from dataclasses import dataclass
import gc
import math
import os
from pathlib import Path
import re
import shutil
import time
from typing import Any

import optuna
from optuna.distributions import BaseDistribution

from optuna_fractal import ENVIRONMENT_FAILURE_ATTR

from .config import load_config
from .config import LoRAConfig
from .instruction_data import InstructionSplits
from .search_space import suggest_parameters


_logger = optuna.logging.get_logger(__name__)

_MAX_FAILURE_MESSAGE = 1000


@dataclass
class _BaseModelFiles:
    """The base checkpoint and what is derived from it once per process."""

    checkpoint_dir: Path
    tokenizer: Any
    device: Any
    precision: Any
    max_seq_length: int


class LoRAObjective:
    """Fine-tune a LitGPT model with LoRA and return a validation or benchmark score.

    Each call trains the LoRA weights with the trial's rank, alpha, dropout, learning rate
    and weight decay, merges them into the base weights, and evaluates the merged model:
    the validation loss on the held-out part of the data (``val_loss``) and the lm-eval
    tasks of the config (``"<task>/<metric>"``). The metric named by
    ``config.evaluation.metric`` is returned.

    The validation loss is reported with ``trial.report`` every ``train.eval_interval``
    steps, and ``trial.should_prune()`` is honoured by raising ``optuna.TrialPruned``.
    The reported value is the validation loss when the study minimises and its negation
    when it maximises, so that a pruner always compares it in the study's direction.

    A trial that fails for a reason outside the code (a missing checkpoint or data file,
    out-of-memory, a NaN or infinite loss) stores the reason in the user attribute
    ``"failure"``, removes its checkpoint folder and returns ``float("nan")``, which
    Optuna records as a FAIL trial without stopping ``study.optimize``. Errors in the
    config or the code propagate.

    NOTE: an instance runs one trial at a time. Use processes, not ``n_jobs > 1``, for
    parallel trials, because trials seed torch's global random generator and share the
    loaded lm-eval tasks.

    User attributes of a complete trial: ``hyperparameters`` (all five values, searched
    or fixed), ``fine_tune_seconds`` (model set-up, training with its intermediate
    validations, and merging), ``evaluation_seconds`` (final validation loss and lm-eval),
    ``val_loss``, ``train_loss``, ``steps``, ``trainable_parameters``, one
    ``"<task>/<metric>"`` per lm-eval metric, and ``checkpoint_dir`` when a checkpoint
    was saved.

    Args:
        config: The validated config, from :func:`load_config`.

    Example:
        >>> import optuna
        >>> from optuna_fractal_objectives import build_objective, config_path
        >>> objective = build_objective(config_path("cpu-tiny"))
        >>> study = optuna.create_study(direction=objective.direction)
        >>> study.optimize(objective, n_trials=2)  # doctest: +SKIP
    """

    def __init__(self, config: LoRAConfig) -> None:
        self._config = config
        self._base: _BaseModelFiles | None = None
        self._splits: InstructionSplits | None = None
        self._evaluator: Any = None
        if config.evaluation.tasks:
            from .evaluation import TaskEvaluator

            self._evaluator = TaskEvaluator(config.evaluation)

    @property
    def config(self) -> LoRAConfig:
        """The configuration of this objective."""
        return self._config

    @property
    def search_space(self) -> dict[str, BaseDistribution]:
        """Distributions of the searched hyperparameters, keyed by parameter name."""
        return dict(self._config.search_space)

    @property
    def direction(self) -> str:
        """``"minimize"`` or ``"maximize"``, the direction of :attr:`metric`."""
        direction = self._config.evaluation.direction
        assert direction is not None
        return direction

    @property
    def metric(self) -> str:
        """Name of the returned metric: ``"val_loss"`` or ``"<task>/<metric>"``."""
        return self._config.evaluation.metric

    def prepare(self) -> Path:
        """Apply the thread setting and locate the base checkpoint, building the tiny one.

        Trials call this themselves; calling it first moves the one-off cost (the tiny
        model build, the tokenizer load) out of the first trial.

        Returns:
            The absolute path of the base checkpoint folder.

        Raises:
            FileNotFoundError: The checkpoint folder or a file in it is missing.
        """
        return self._prepare_base().checkpoint_dir

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        """Run one fine-tuning trial and return the configured metric.

        Args:
            trial: The trial that samples the hyperparameters; an ``optuna.trial.Trial``
                or an ``optuna.trial.FixedTrial``.

        Returns:
            The metric, or ``float("nan")`` when the trial failed (see the class
            docstring).

        Raises:
            optuna.TrialPruned: The pruner stopped the trial.
        """
        hyperparameters = suggest_parameters(trial, self._config.search_space, self._config.fixed)
        trial.set_user_attr("hyperparameters", hyperparameters)
        folder = self._trial_folder(trial)
        completed = False
        try:
            value = self._run_trial(trial, hyperparameters, folder)
            completed = True
            return value
        except Exception as error:
            if isinstance(error, optuna.TrialPruned) or not _is_trial_failure(error):
                raise
            reason = f"{type(error).__name__}: {error}"[:_MAX_FAILURE_MESSAGE]
            trial.set_user_attr("failure", reason)
            if isinstance(error, FileNotFoundError):
                # A missing file fails every trial alike: the partition samplers retry the cell
                # once it is fixed instead of marking it failed.
                trial.set_user_attr(ENVIRONMENT_FAILURE_ATTR, True)
            _logger.warning(f"Trial {trial.number} failed: {reason}")
            return float("nan")
        finally:
            # Failed, pruned and interrupted trials leave no checkpoint behind.
            if not completed:
                _remove_folder(folder)
            _release_memory()

    def evaluate_base_model(self) -> dict[str, float]:
        """Evaluate the base model without an adapter, as a trial evaluates its model.

        Returns:
            ``{"val_loss": ..., "<task>/<metric>": ...}`` of the base model. A trial whose
            adapter stays zero (learning rate 0) returns exactly these values.
        """
        from .checkpoint import load_base_state_dict
        from .training import build_base_model

        base = self._prepare_base()
        splits = self._load_splits()
        model = build_base_model(
            base.checkpoint_dir / "model_config.yaml",
            load_base_state_dict(base.checkpoint_dir),
            base.device,
            base.precision,
            base.max_seq_length,
        )
        try:
            return self._evaluate(model, base, splits)
        finally:
            del model
            _release_memory()

    def _run_trial(
        self, trial: optuna.trial.BaseTrial, hyperparameters: dict[str, Any], folder: Path
    ) -> float:
        from .checkpoint import load_base_state_dict
        from .checkpoint import save_trial_checkpoint
        from .training import build_lora_model
        from .training import fine_tune
        from .training import merge_adapter

        config = self._config
        base = self._prepare_base()
        splits = self._load_splits()
        sign = 1.0 if self.direction == "minimize" else -1.0
        reported_steps: set[int] = set()

        def report(step: int, loss: float) -> None:
            trial.report(sign * loss, step)
            reported_steps.add(step)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_step", step)
                raise optuna.TrialPruned(f"Pruned at step {step}: validation loss {loss:.4f}.")

        start = time.perf_counter()
        model = build_lora_model(
            base.checkpoint_dir / "model_config.yaml",
            load_base_state_dict(base.checkpoint_dir),
            hyperparameters,
            config.lora,
            base.device,
            base.precision,
            config.train.seed,
            base.max_seq_length,
        )
        train_loader, val_loader = self._loaders(base, splits)
        result = fine_tune(
            model,
            train_loader,
            val_loader,
            config.train,
            hyperparameters,
            base.device,
            base.precision,
            on_validation=report,
        )
        merge_adapter(model, hyperparameters)
        fine_tune_seconds = time.perf_counter() - start

        start = time.perf_counter()
        metrics = self._evaluate(model, base, splits)
        evaluation_seconds = time.perf_counter() - start
        if result.steps not in reported_steps:
            trial.report(sign * metrics["val_loss"], result.steps)

        if config.output.save != "none":
            # A folder of the same name can be left by a deleted study of the same name.
            _remove_folder(folder)
            save_trial_checkpoint(
                model,
                folder,
                base.checkpoint_dir,
                hyperparameters,
                config.lora,
                config.train.precision,
                include_merged=config.output.save == "merged",
            )
            trial.set_user_attr("checkpoint_dir", str(folder))

        trial.set_user_attr("fine_tune_seconds", round(fine_tune_seconds, 3))
        trial.set_user_attr("evaluation_seconds", round(evaluation_seconds, 3))
        trial.set_user_attr("train_loss", result.train_loss)
        trial.set_user_attr("steps", result.steps)
        trial.set_user_attr("trainable_parameters", result.trainable_parameters)
        for name, value in metrics.items():
            trial.set_user_attr(name, value)

        if self.metric not in metrics:
            raise ValueError(
                f"evaluation.metric {self.metric!r} is not among the evaluated metrics "
                f"{sorted(metrics)}; fix evaluation.metric in the config."
            )
        value = metrics[self.metric]
        if not math.isfinite(value):
            from .training import NonFiniteLossError

            raise NonFiniteLossError(f"The metric {self.metric} is {value}.")
        return value

    def _evaluate(
        self, model: Any, base: _BaseModelFiles, splits: InstructionSplits
    ) -> dict[str, float]:
        from .training import validation_loss

        _, val_loader = self._loaders(base, splits, train=False)
        metrics = {"val_loss": validation_loss(model, val_loader, base.device, base.precision)}
        if self._evaluator is not None:
            metrics.update(
                self._evaluator.evaluate(model, base.tokenizer, base.device, base.precision)
            )
        return metrics

    def _prepare_base(self) -> _BaseModelFiles:
        if self._base is not None:
            return self._base
        from litgpt.config import Config
        from litgpt.tokenizer import Tokenizer
        import torch

        from .checkpoint import validate_checkpoint_dir
        from .training import precision_settings
        from .training import resolve_device

        config = self._config
        if config.train.num_threads is not None:
            torch.set_num_threads(config.train.num_threads)
        if config.model.checkpoint_dir is not None:
            checkpoint_dir = config.model.checkpoint_dir
        else:
            from .tiny_model import ensure_tiny_model

            assert config.model.tiny is not None
            checkpoint_dir = ensure_tiny_model(config.model.tiny, config.cache_dir)
        validate_checkpoint_dir(checkpoint_dir)

        block_size = Config.from_file(checkpoint_dir / "model_config.yaml").block_size
        max_seq_length = config.data.max_seq_length or block_size
        if max_seq_length > block_size:
            _logger.warning(
                f"data.max_seq_length {max_seq_length} exceeds the model's context length "
                f"{block_size}; examples are truncated to {block_size} tokens."
            )
            max_seq_length = block_size
        self._base = _BaseModelFiles(
            checkpoint_dir=checkpoint_dir,
            tokenizer=Tokenizer(checkpoint_dir),
            device=resolve_device(config.train.accelerator),
            precision=precision_settings(config.train.precision),
            max_seq_length=max_seq_length,
        )
        return self._base

    def _load_splits(self) -> InstructionSplits:
        if self._splits is None:
            from .instruction_data import load_alpaca_records
            from .instruction_data import split_records

            records = load_alpaca_records(self._config.data.path)
            self._splits = split_records(records, self._config.data)
        return self._splits

    def _loaders(
        self, base: _BaseModelFiles, splits: InstructionSplits, train: bool = True
    ) -> tuple[Any, Any]:
        # New loaders for each trial: a reused shuffling generator would give each trial
        # a different batch order.
        from .instruction_data import make_loader

        config = self._config
        arguments = {
            "tokenizer": base.tokenizer,
            "config": config.data,
            "max_seq_length": base.max_seq_length,
            "batch_size": config.train.micro_batch_size,
        }
        train_loader = make_loader(splits.train, shuffle=True, **arguments) if train else None
        return train_loader, make_loader(splits.val, shuffle=False, **arguments)

    def _trial_folder(self, trial: optuna.trial.BaseTrial) -> Path:
        study = getattr(trial, "study", None)
        study_name = study.study_name if study is not None else "no-study"
        safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name)
        return self._config.checkpoint_root / safe_name / f"trial-{trial.number:05d}"


def build_objective(config_or_path: LoRAConfig | str | os.PathLike[str]) -> LoRAObjective:
    """Create a :class:`LoRAObjective` from a config or the path of a YAML config.

    Nothing heavy happens here: LitGPT, lm-eval and torch are imported, and the tiny base
    model is built, by the first trial (or by :meth:`LoRAObjective.prepare`).

    Args:
        config_or_path: A :class:`LoRAConfig` or the path of a YAML file.

    Returns:
        The objective.

    Example:
        >>> from optuna_fractal_objectives import build_objective, config_path
        >>> objective = build_objective(config_path("cpu-tiny"))
        >>> objective.direction
        'minimize'
        >>> sorted(objective.search_space)
        ['learning_rate', 'lora_alpha', 'lora_dropout', 'lora_r', 'weight_decay']
    """
    config = (
        config_or_path if isinstance(config_or_path, LoRAConfig) else load_config(config_or_path)
    )
    for path, key in (
        (config.data.path, "data.path"),
        (config.model.checkpoint_dir, "model.checkpoint_dir"),
    ):
        if path is not None and not path.exists():
            # Not an error: the file may appear before the first trial runs, and a trial
            # without it fails on its own.
            _logger.warning(f"{key} {path} does not exist yet; trials fail until it does.")
    return LoRAObjective(config)


def _is_trial_failure(error: BaseException) -> bool:
    import torch

    from .training import NonFiniteLossError

    out_of_memory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(error, (FileNotFoundError, NonFiniteLossError, MemoryError, out_of_memory)):
        return True
    # The CPU allocator of torch reports a failed allocation as a RuntimeError.
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def _remove_folder(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)


def _release_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
