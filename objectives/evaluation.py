"""Run lm-eval tasks on an in-memory LitGPT model and collect their metrics."""

from __future__ import annotations

import math
from typing import Any
from typing import TYPE_CHECKING

import optuna

from .config import EvaluationConfig


if TYPE_CHECKING:
    from .training import PrecisionSettings


_logger = optuna.logging.get_logger(__name__)


class TaskEvaluator:
    """Load the configured lm-eval tasks once and score models with them.

    The tasks are loaded on the first call of :meth:`evaluate` and reused, so the task
    index and the datasets are read once per worker process. Before every evaluation
    the few-shot seed is reset, so every model gets the same prompts.

    Args:
        config: The evaluation settings; ``config.tasks`` must not be empty.
    """

    def __init__(self, config: EvaluationConfig) -> None:
        if not config.tasks:
            raise ValueError("TaskEvaluator needs at least one task in evaluation.tasks.")
        self._config = config
        self._task_dict: dict[str, Any] | None = None

    def evaluate(
        self,
        model: Any,
        tokenizer: Any,
        device: Any,
        precision: PrecisionSettings,
    ) -> dict[str, float]:
        """Score ``model`` on every configured task.

        Args:
            model: A ``litgpt.GPT`` (merged LoRA models included).
            tokenizer: The model's ``litgpt.tokenizer.Tokenizer``.
            device: The model's device.
            precision: The autocast setting.

        Returns:
            ``{"<task>/<metric>": value}`` for every metric that lm-eval reports for the
            configured tasks and groups, for example ``{"mmlu/acc": 0.31}``.
        """
        from lm_eval.evaluator import evaluate

        from .lm_eval_model import LitGPTEvalModel

        task_dict = self._load_tasks()
        for task in task_dict["tasks"].values():
            task.set_fewshot_seed(seed=self._config.fewshot_seed)
        lm = LitGPTEvalModel(model, tokenizer, device, precision, self._config.batch_size)
        output = evaluate(
            lm=lm,
            task_dict=task_dict,
            limit=self._config.limit,
            bootstrap_iters=0,
            log_samples=False,
        )
        return self._collect_metrics(output["results"])

    def _load_tasks(self) -> dict[str, Any]:
        if self._task_dict is not None:
            return self._task_dict
        from lm_eval.tasks import TaskManager

        config = self._config
        include_path = None if config.include_path is None else str(config.include_path)
        manager = TaskManager(include_path=include_path, include_defaults=config.include_defaults)
        unknown = [name for name in config.tasks if name not in manager.all_tasks]
        if unknown:
            raise ValueError(
                f"Unknown lm-eval tasks {unknown} in evaluation.tasks. Check the names, or set "
                "evaluation.include_path to the folder of their YAML files (and "
                "evaluation.include_defaults: true for lm-eval's own tasks)."
            )
        task_dict = manager.load(list(config.tasks))
        for name, task in task_dict["tasks"].items():
            # The same defaults as lm_eval.simple_evaluate: an explicit num_fewshot
            # overrides the task's, except for tasks pinned to 0 shots.
            default = task.get_config("num_fewshot")
            if config.num_fewshot is not None and default != 0:
                task.set_config(key="num_fewshot", value=config.num_fewshot)
            elif default is None:
                task.set_config(key="num_fewshot", value=0)
            _logger.debug(f"Loaded lm-eval task {name}.")
        self._task_dict = task_dict
        return task_dict

    def _collect_metrics(self, results: dict[str, dict[str, Any]]) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for name in self._config.tasks:
            if name not in results:
                raise RuntimeError(
                    f"lm-eval returned no results for task {name!r}; it returned "
                    f"{sorted(results)}."
                )
            for key, value in results[name].items():
                metric, _, filter_name = key.partition(",")
                if not filter_name or "_stderr" in metric or not isinstance(value, (int, float)):
                    continue
                # "acc,none" is the unfiltered metric; other filters keep their name.
                label = metric if filter_name == "none" else f"{metric},{filter_name}"
                metrics[f"{name}/{label}"] = float(value)
        for label, value in metrics.items():
            if not math.isfinite(value):
                _logger.warning(f"lm-eval metric {label} is {value}.")
        return metrics
