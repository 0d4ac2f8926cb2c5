"""Read and validate the YAML configuration of the LoRA fine-tuning objective.

A config file has these top-level sections, all optional except ``model`` and ``data``:
``model``, ``data``, ``search_space``, ``fixed``, ``lora``, ``train``, ``evaluation``,
``output`` and the key ``cache_dir``. Relative paths in the file are resolved against the
folder that contains the file, and ``~`` and ``$VARIABLES`` are expanded, so every path
that reaches LitGPT is absolute. ``docs/llm-objective.md`` lists every key.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass
from dataclasses import field
import os
from pathlib import Path
import types
import typing
from typing import Any
from typing import Literal

from optuna.distributions import BaseDistribution
import yaml

from .search_space import parse_fixed
from .search_space import parse_search_space


CACHE_ENV_VAR = "OPTUNA_FRACTAL_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/optuna-fractal")
BUNDLED_CONFIG_DIR = Path(__file__).resolve().parent / "configs"

Precision = Literal["32-true", "bf16-true", "bf16-mixed"]

# Default optimisation direction of the metrics that lm-eval's multiple-choice and
# perplexity tasks report. Other metrics need an explicit `evaluation.direction`.
_METRIC_DIRECTIONS = {
    "val_loss": "minimize",
    "acc": "maximize",
    "acc_norm": "maximize",
    "exact_match": "maximize",
    "f1": "maximize",
    "mcc": "maximize",
    "perplexity": "minimize",
    "word_perplexity": "minimize",
    "byte_perplexity": "minimize",
    "bits_per_byte": "minimize",
}


@dataclass(frozen=True)
class TinyModelConfig:
    """Architecture and pre-training of the tiny LLaMA-shaped base model.

    The model has RMSNorm, rotary position embeddings and a SwiGLU MLP (LitGPT's
    ``LLaMAMLP``), a byte-level BPE tokenizer trained on ``pretrain_data``, and is
    pre-trained on the same text. It is built on first use and cached under
    ``<cache_dir>/base-models``.

    Attributes:
        pretrain_data: Alpaca-format JSON file whose text trains the tokenizer and the model.
        n_layer: Number of transformer blocks. Default 4.
        n_head: Number of attention heads. Default 4.
        n_embd: Embedding width. Default 128.
        intermediate_size: Hidden width of the SwiGLU MLP. Default 352.
        vocab_size: Target BPE vocabulary size, special tokens included. Default 2048.
        block_size: Context length in tokens. Default 256.
        pretrain_steps: Number of AdamW steps of pre-training. Default 300.
        pretrain_batch_size: Sequences of ``block_size`` tokens per step. Default 16.
        pretrain_learning_rate: Peak learning rate of pre-training. Default 3e-3.
        seed: Seed of weight initialisation and batch sampling. Default 0.
    """

    pretrain_data: Path
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    intermediate_size: int = 352
    vocab_size: int = 2048
    block_size: int = 256
    pretrain_steps: int = 300
    pretrain_batch_size: int = 16
    pretrain_learning_rate: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "intermediate_size", "block_size"):
            _require(getattr(self, name) >= 1, f"model.tiny.{name}", getattr(self, name), ">= 1")
        _require(
            self.n_embd % self.n_head == 0,
            "model.tiny.n_embd",
            self.n_embd,
            f"a multiple of n_head ({self.n_head})",
        )
        _require(self.vocab_size >= 300, "model.tiny.vocab_size", self.vocab_size, ">= 300")
        _require(
            self.pretrain_steps >= 0, "model.tiny.pretrain_steps", self.pretrain_steps, ">= 0"
        )
        _require(
            self.pretrain_batch_size >= 1,
            "model.tiny.pretrain_batch_size",
            self.pretrain_batch_size,
            ">= 1",
        )
        _require(
            self.pretrain_learning_rate > 0,
            "model.tiny.pretrain_learning_rate",
            self.pretrain_learning_rate,
            "> 0",
        )


@dataclass(frozen=True)
class ModelConfig:
    """Base model: a LitGPT checkpoint folder, or the tiny model built on first use.

    Attributes:
        checkpoint_dir: LitGPT checkpoint folder with ``lit_model.pth``,
            ``model_config.yaml`` and the tokenizer files. Default None.
        tiny: Settings of the tiny base model; used when ``checkpoint_dir`` is None.
            Default None.
    """

    checkpoint_dir: Path | None = None
    tiny: TinyModelConfig | None = None

    def __post_init__(self) -> None:
        if (self.checkpoint_dir is None) == (self.tiny is None):
            raise ValueError(
                "Set exactly one of model.checkpoint_dir (a LitGPT checkpoint folder) and "
                "model.tiny (settings of the tiny base model built on first use)."
            )


@dataclass(frozen=True)
class DataConfig:
    """Instruction-tuning data in Alpaca format and its split into training and validation.

    Attributes:
        path: JSON or JSONL file of records with ``instruction``, ``output`` and an
            optional ``input``.
        val_split_fraction: Fraction of the records held out for the validation loss.
            Default 0.05, as in LitGPT's ``JSON`` data module.
        prompt_style: LitGPT prompt style that formats each record. Default ``"alpaca"``.
        mask_prompt: If True, the loss covers only the response tokens. Default False.
        max_seq_length: Maximum tokens per example; longer ones are truncated. None means
            the model's context length. Default None.
        seed: Seed of the split and of the shuffling of training batches. Default 42.
        num_workers: DataLoader worker processes. Default 0, which loads in the
            training process.
    """

    path: Path
    val_split_fraction: float = 0.05
    prompt_style: str = "alpaca"
    mask_prompt: bool = False
    max_seq_length: int | None = None
    seed: int = 42
    num_workers: int = 0

    def __post_init__(self) -> None:
        _require(
            0 < self.val_split_fraction < 1,
            "data.val_split_fraction",
            self.val_split_fraction,
            "in (0, 1)",
        )
        if self.max_seq_length is not None:
            _require(self.max_seq_length >= 2, "data.max_seq_length", self.max_seq_length, ">= 2")
        _require(self.num_workers >= 0, "data.num_workers", self.num_workers, ">= 0")


@dataclass(frozen=True)
class LoRALayersConfig:
    """Weights that get a LoRA adapter. The defaults are those of ``litgpt finetune lora``.

    Attributes:
        query: Attention query projection. Default True.
        key: Attention key projection. Default False.
        value: Attention value projection. Default True.
        projection: Attention output projection. Default False.
        mlp: MLP weights. Default False.
        head: Output head. Default False.
    """

    query: bool = True
    key: bool = False
    value: bool = True
    projection: bool = False
    mlp: bool = False
    head: bool = False

    def __post_init__(self) -> None:
        if not any(dataclasses.astuple(self)):
            raise ValueError("The lora section disables every layer; enable at least one.")


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning loop settings, named as in LitGPT's ``TrainArgs`` and ``EvalArgs``.

    Attributes:
        max_steps: Number of optimizer steps. Default None (use ``epochs``).
        epochs: Number of passes over the training split. Default None (use ``max_steps``).
            When both are set, training stops at whichever comes first.
        micro_batch_size: Examples per forward pass. Default 1.
        global_batch_size: Examples per optimizer step; a multiple of ``micro_batch_size``
            (gradient accumulation). Default 16.
        lr_warmup_steps: Steps of linear warm-up before cosine decay; 0 disables warm-up.
            Default 100.
        precision: ``"32-true"``, ``"bf16-true"`` or ``"bf16-mixed"``. Default ``"32-true"``.
        accelerator: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available). Default
            ``"auto"``.
        devices: Number of devices; only 1 is supported. Default 1.
        eval_interval: Optimizer steps between validation-loss evaluations. Default 100.
        eval_max_batches: Maximum validation batches per intermediate evaluation; None
            means all. The final validation loss always uses all batches. Default None.
        initial_validation: If True, the validation loss is also evaluated and reported
            at step 0, before training. Default False.
        num_threads: Value for ``torch.set_num_threads`` in the worker process; None
            leaves torch's setting alone. Default None.
        seed: Seed of LoRA initialisation and dropout. The same seed in every trial makes
            trials differ only by their hyperparameters. Default 1337.
    """

    max_steps: int | None = None
    epochs: int | None = None
    micro_batch_size: int = 1
    global_batch_size: int = 16
    lr_warmup_steps: int = 100
    precision: Precision = "32-true"
    accelerator: Literal["auto", "cpu", "cuda"] = "auto"
    devices: int = 1
    eval_interval: int = 100
    eval_max_batches: int | None = None
    initial_validation: bool = False
    num_threads: int | None = None
    seed: int = 1337

    def __post_init__(self) -> None:
        if self.max_steps is None and self.epochs is None:
            raise ValueError("Set train.max_steps or train.epochs (or both).")
        if self.max_steps is not None:
            _require(self.max_steps >= 1, "train.max_steps", self.max_steps, ">= 1")
        if self.epochs is not None:
            _require(self.epochs >= 1, "train.epochs", self.epochs, ">= 1")
        _require(
            self.micro_batch_size >= 1, "train.micro_batch_size", self.micro_batch_size, ">= 1"
        )
        _require(
            self.global_batch_size % self.micro_batch_size == 0 and self.global_batch_size >= 1,
            "train.global_batch_size",
            self.global_batch_size,
            f"a positive multiple of train.micro_batch_size ({self.micro_batch_size})",
        )
        _require(self.lr_warmup_steps >= 0, "train.lr_warmup_steps", self.lr_warmup_steps, ">= 0")
        if self.devices != 1:
            raise ValueError(
                f"Invalid train.devices {self.devices!r}: each worker trains on one device. "
                "To use several GPUs, start one worker per GPU (CUDA_VISIBLE_DEVICES=<i>) on "
                "the same study storage."
            )
        _require(self.eval_interval >= 1, "train.eval_interval", self.eval_interval, ">= 1")
        if self.eval_max_batches is not None:
            _require(
                self.eval_max_batches >= 1, "train.eval_max_batches", self.eval_max_batches, ">= 1"
            )
        if self.num_threads is not None:
            _require(self.num_threads >= 1, "train.num_threads", self.num_threads, ">= 1")

    @property
    def gradient_accumulation_steps(self) -> int:
        """Micro-batches per optimizer step."""
        return self.global_batch_size // self.micro_batch_size


@dataclass(frozen=True)
class EvaluationConfig:
    """The metric to optimise and the lm-eval tasks to run after fine-tuning.

    Attributes:
        metric: ``"val_loss"`` (validation loss on the held-out data) or
            ``"<task>/<metric>"`` of one of ``tasks``, for example ``"mmlu/acc"`` or
            ``"hellaswag/acc_norm"``. Default ``"val_loss"``.
        direction: ``"minimize"`` or ``"maximize"``. None infers it from the metric name
            (``val_loss`` and perplexities are minimised, accuracies maximised).
            Default None.
        tasks: lm-eval task or group names; each one's metrics are stored as user
            attributes ``"<task>/<metric>"``. Default no tasks.
        include_path: Folder of extra lm-eval task YAML files. Default None.
        include_defaults: If True, lm-eval's own task index is searched too (about 7 s to
            build with lm-eval 0.4.13). Default True.
        num_fewshot: Few-shot examples per question; None keeps each task's default.
            Default None.
        limit: Questions per task: a count (>= 1) or a fraction (< 1). None means all.
            Default None.
        batch_size: Sequences per forward pass during lm-eval scoring. Default 8.
        fewshot_seed: Seed of few-shot example selection, reset before every
            evaluation so that all trials see the same prompts. Default 1234.
    """

    metric: str = "val_loss"
    direction: Literal["minimize", "maximize"] | None = None
    tasks: tuple[str, ...] = ()
    include_path: Path | None = None
    include_defaults: bool = True
    num_fewshot: int | None = None
    limit: float | None = None
    batch_size: int = 8
    fewshot_seed: int = 1234

    def __post_init__(self) -> None:
        if self.metric != "val_loss":
            task, _, metric = self.metric.partition("/")
            if not task or not metric:
                raise ValueError(
                    f"Invalid evaluation.metric {self.metric!r}: use 'val_loss' or "
                    "'<task>/<metric>', for example 'mmlu/acc'."
                )
            if task not in self.tasks:
                raise ValueError(
                    f"evaluation.metric {self.metric!r} refers to task '{task}', which is not "
                    f"in evaluation.tasks {list(self.tasks)}; add it there."
                )
        if self.direction is None:
            metric_name = self.metric.rpartition("/")[2]
            if metric_name not in _METRIC_DIRECTIONS:
                raise ValueError(
                    f"Cannot infer the direction of metric {self.metric!r}; set "
                    "evaluation.direction to 'minimize' or 'maximize'."
                )
            object.__setattr__(self, "direction", _METRIC_DIRECTIONS[metric_name])
        if self.num_fewshot is not None:
            _require(self.num_fewshot >= 0, "evaluation.num_fewshot", self.num_fewshot, ">= 0")
        if self.limit is not None:
            _require(self.limit > 0, "evaluation.limit", self.limit, "> 0")
            if self.limit >= 1:
                _require(
                    float(self.limit).is_integer(),
                    "evaluation.limit",
                    self.limit,
                    "a whole number of questions or a fraction below 1",
                )
                object.__setattr__(self, "limit", int(self.limit))
        _require(self.batch_size >= 1, "evaluation.batch_size", self.batch_size, ">= 1")


@dataclass(frozen=True)
class OutputConfig:
    """Location and contents of the trial checkpoints.

    Attributes:
        checkpoint_dir: Root folder of trial checkpoints; a trial writes to
            ``<checkpoint_dir>/<study name>/trial-<number>``. None means
            ``<cache_dir>/checkpoints``. Default None.
        save: ``"adapter"`` saves the LoRA weights with ``hyperparameters.yaml`` (a folder
            that ``litgpt merge_lora`` accepts), ``"merged"`` also saves the merged
            weights as ``lit_model.pth``, ``"none"`` saves nothing. Default ``"adapter"``.
    """

    checkpoint_dir: Path | None = None
    save: Literal["none", "adapter", "merged"] = "adapter"


@dataclass(frozen=True)
class LoRAConfig:
    """Complete configuration of a :class:`~optuna_fractal_objectives.LoRAObjective`.

    Attributes:
        model: The base model.
        data: The fine-tuning data.
        search_space: Distributions of the searched hyperparameters, keyed by name.
        fixed: Values of the hyperparameters that are not searched.
        lora: The weights that get LoRA adapters.
        train: The fine-tuning loop.
        evaluation: The metric and the lm-eval tasks.
        output: The trial checkpoints.
        cache_dir: Folder of the tiny base models and the default checkpoint folder.
        source: The YAML file this config was read from, if any.
    """

    model: ModelConfig
    data: DataConfig
    search_space: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    lora: LoRALayersConfig = field(default_factory=LoRALayersConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=100))
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    source: Path | None = None

    @property
    def checkpoint_root(self) -> Path:
        """Root folder of the trial checkpoints."""
        return self.output.checkpoint_dir or self.cache_dir / "checkpoints"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | os.PathLike[str]) -> LoRAConfig:
        """Build a config from the parsed YAML mapping.

        Args:
            data: The mapping, with the sections listed in the module docstring.
            base_dir: Folder against which relative paths are resolved.

        Returns:
            The validated config.

        Raises:
            ValueError: A key is unknown, a value has the wrong type, or a setting is
                invalid. The message names the key.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"A config must be a mapping of sections, got {data!r}.")
        base = Path(base_dir)
        sections = {
            "model",
            "data",
            "search_space",
            "fixed",
            "lora",
            "train",
            "evaluation",
            "output",
            "cache_dir",
        }
        _reject_unknown_keys(data, sections, "the config")
        for required in ("model", "data"):
            if required not in data:
                raise ValueError(f"The config has no '{required}' section.")

        search_space = parse_search_space(data.get("search_space"))
        cache_dir = data.get("cache_dir")
        return cls(
            model=_parse_dataclass(ModelConfig, data["model"], "model", base),
            data=_parse_dataclass(DataConfig, data["data"], "data", base),
            search_space=search_space,
            fixed=parse_fixed(data.get("fixed"), search_space),
            lora=_parse_dataclass(LoRALayersConfig, data.get("lora") or {}, "lora", base),
            train=_parse_dataclass(TrainConfig, data.get("train") or {}, "train", base),
            evaluation=_parse_dataclass(
                EvaluationConfig, data.get("evaluation") or {}, "evaluation", base
            ),
            output=_parse_dataclass(OutputConfig, data.get("output") or {}, "output", base),
            cache_dir=default_cache_dir()
            if cache_dir is None
            else _to_path(cache_dir, "cache_dir", base),
        )


def default_cache_dir() -> Path:
    """Return ``$OPTUNA_FRACTAL_CACHE`` if set, else ``~/.cache/optuna-fractal``, absolute."""
    value = os.environ.get(CACHE_ENV_VAR)
    path = Path(value) if value else DEFAULT_CACHE_DIR
    return path.expanduser().resolve()


def load_config(path: str | os.PathLike[str]) -> LoRAConfig:
    """Read and validate a YAML config of the LoRA objective.

    Args:
        path: The YAML file. Relative paths inside it are resolved against its folder.

    Returns:
        The validated config.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not valid YAML or not a valid config; the message names
            the key and the fix.

    Example:
        >>> from optuna_fractal_objectives import config_path, load_config
        >>> config = load_config(config_path("cpu-tiny"))
        >>> config.evaluation.metric
        'val_loss'
    """
    file = Path(path).expanduser()
    if not file.is_file():
        message = f"Config file not found: {file}."
        if file.suffix not in (".yaml", ".yml") and file.name in bundled_config_names():
            message += f" For the bundled config use config_path({file.name!r})."
        raise FileNotFoundError(message)
    file = file.resolve()
    try:
        with open(file, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except yaml.YAMLError as error:
        raise ValueError(f"Invalid YAML in {file}: {error}") from error
    try:
        config = LoRAConfig.from_dict(data, base_dir=file.parent)
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from error
    return dataclasses.replace(config, source=file)


def bundled_config_names() -> list[str]:
    """Return the names of the configs shipped with the package, sorted."""
    return sorted(path.stem for path in BUNDLED_CONFIG_DIR.glob("*.yaml"))


def config_path(name: str) -> Path:
    """Return the path of a config shipped with the package.

    Args:
        name: The config name, for example ``"cpu-tiny"`` (the offline CPU default) or
            ``"llama-3.2-1b"`` (the GPU reference experiment).

    Returns:
        The absolute path of ``configs/<name>.yaml`` inside the package.

    Raises:
        ValueError: No bundled config has that name.

    Example:
        >>> from optuna_fractal_objectives import config_path
        >>> config_path("cpu-tiny").name
        'cpu-tiny.yaml'
    """
    path = BUNDLED_CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(
            f"No bundled config named {name!r}; available: {', '.join(bundled_config_names())}."
        )
    return path


def _require(condition: bool, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise ValueError(f"Invalid {key} {value!r}: expected {expected}.")


def _reject_unknown_keys(data: Mapping[str, Any], valid: set[str], where: str) -> None:
    unknown = set(data) - valid
    if unknown:
        raise ValueError(
            f"Unknown keys {sorted(map(str, unknown))} in {where}; valid keys are {sorted(valid)}."
        )


def _parse_dataclass(cls: type[Any], data: Any, section: str, base_dir: Path) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"Section '{section}' must be a mapping, got {data!r}.")
    hints = typing.get_type_hints(cls)
    names = {item.name for item in dataclasses.fields(cls)}
    _reject_unknown_keys(data, names, f"section '{section}'")
    values = {
        name: _convert(value, hints[name], f"{section}.{name}", base_dir)
        for name, value in data.items()
    }
    try:
        return cls(**values)
    except TypeError as error:
        # A required key is missing; dataclasses report it as a TypeError.
        raise ValueError(f"Section '{section}' is incomplete: {error}") from error


def _convert(value: Any, hint: Any, key: str, base_dir: Path) -> Any:
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)

    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        (inner,) = [argument for argument in arguments if argument is not type(None)]
        return _convert(value, inner, key, base_dir)
    if origin is Literal:
        if value not in arguments:
            raise ValueError(
                f"Invalid {key} {value!r}: use one of {', '.join(map(repr, arguments))}."
            )
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"Invalid {key} {value!r}: expected a list of strings.")
        return tuple(value)
    if dataclasses.is_dataclass(hint):
        return _parse_dataclass(hint, value, key, base_dir)
    if hint is Path:
        return _to_path(value, key, base_dir)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"Invalid {key} {value!r}: expected true or false.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"Invalid {key} {value!r}: expected an integer.")
        return value
    if hint is float:
        # PyYAML reads exponent notation without a dot (3e-3) as a string.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"Invalid {key} {value!r}: expected a number.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"Invalid {key} {value!r}: expected a string.")
        return value
    raise TypeError(f"Internal error: config.py cannot convert {key} to {hint!r}.")


def _to_path(value: Any, key: str, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError(f"Invalid {key} {value!r}: expected a path string.")
    expanded = os.path.expanduser(os.path.expandvars(value))
    if "$" in expanded:
        raise ValueError(
            f"Invalid {key} {value!r}: environment variable in {expanded!r} is not set."
        )
    path = Path(expanded)
    if not path.is_absolute():
        path = base_dir / path
    return path.resolve()
