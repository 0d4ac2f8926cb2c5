"""Tests of the LoRA objective with real LitGPT models, lm-eval tasks and Optuna studies.

All tests share one tiny base model (2 layers, 32-wide), built once per session in a
temporary cache folder from the bundled pre-training text.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import textwrap
from typing import Any

import optuna
import pytest

from optuna_fractal import ENVIRONMENT_FAILURE_ATTR


pytest.importorskip("litgpt")
pytest.importorskip("lm_eval")

import torch  # noqa: E402

import optuna_fractal_objectives  # noqa: E402
from optuna_fractal_objectives import build_objective  # noqa: E402
from optuna_fractal_objectives import LoRAConfig  # noqa: E402
from optuna_fractal_objectives import LoRAObjective  # noqa: E402
from optuna_fractal_objectives.checkpoint import load_base_state_dict  # noqa: E402
from optuna_fractal_objectives.checkpoint import save_trial_checkpoint  # noqa: E402
from optuna_fractal_objectives.config import LoRALayersConfig  # noqa: E402
from optuna_fractal_objectives.config import TrainConfig  # noqa: E402
from optuna_fractal_objectives.tiny_model import ensure_tiny_model  # noqa: E402
from optuna_fractal_objectives.training import build_base_model  # noqa: E402
from optuna_fractal_objectives.training import build_lora_model  # noqa: E402
from optuna_fractal_objectives.training import fine_tune  # noqa: E402
from optuna_fractal_objectives.training import merge_adapter  # noqa: E402
from optuna_fractal_objectives.training import precision_settings  # noqa: E402


PACKAGE_DIR = Path(optuna_fractal_objectives.__file__).resolve().parent
FP32 = precision_settings("32-true")
CPU = torch.device("cpu")

TINY_SPEC = {
    "pretrain_data": str(PACKAGE_DIR / "data" / "alpaca" / "pretrain.json"),
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 32,
    "intermediate_size": 64,
    "vocab_size": 512,
    "block_size": 128,
    "pretrain_steps": 30,
    "pretrain_batch_size": 8,
    "pretrain_learning_rate": 3e-3,
    "seed": 0,
}

TRAINED = {
    "lora_r": 4,
    "lora_alpha": 32,
    "lora_dropout": 0.1,
    "learning_rate": 1e-2,
    "weight_decay": 0.01,
}


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("optuna-fractal-cache")
    spec = LoRAConfig.from_dict(_config_dict(folder, Path("unused.json")), folder).model.tiny
    assert spec is not None
    ensure_tiny_model(spec, folder)
    return folder


@pytest.fixture(scope="session")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = json.loads((PACKAGE_DIR / "data" / "alpaca" / "finetune.json").read_text())
    path = tmp_path_factory.mktemp("data") / "alpaca_160.json"
    path.write_text(json.dumps(records[:160]))
    return path


def _config_dict(cache_dir: Path, data_path: Path, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cache_dir": str(cache_dir),
        "model": {"tiny": dict(TINY_SPEC)},
        "data": {"path": str(data_path), "val_split_fraction": 0.1, "max_seq_length": 128},
        "search_space": {
            "lora_r": {"type": "int", "low": 2, "high": 8},
            "lora_alpha": {"type": "int", "low": 1, "high": 64},
            "lora_dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        },
        "train": {
            "max_steps": 6,
            "micro_batch_size": 4,
            "global_batch_size": 4,
            "lr_warmup_steps": 0,
            "accelerator": "cpu",
            "eval_interval": 2,
            "num_threads": 1,
        },
        "evaluation": {
            "tasks": ["mmlu_tiny"],
            "include_path": str(PACKAGE_DIR / "tasks"),
            "include_defaults": False,
            "limit": 5,
        },
        "output": {"checkpoint_dir": str(data_path.parent / "checkpoints")},
    }
    for key, value in changes.items():
        # Settings sections are updated key by key; the model section is replaced.
        if key in ("data", "train", "evaluation", "output") and isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def _objective(cache_dir: Path, data_path: Path, **changes: Any) -> LoRAObjective:
    config = LoRAConfig.from_dict(_config_dict(cache_dir, data_path, **changes), cache_dir)
    return build_objective(config)


def _fixed_only(values: dict[str, Any]) -> dict[str, Any]:
    return {"search_space": None, "fixed": values}


def _models(objective: LoRAObjective, hyperparameters: dict[str, Any]) -> tuple[Any, Any, Any]:
    checkpoint_dir = objective.prepare()
    state = load_base_state_dict(checkpoint_dir)
    config_file = checkpoint_dir / "model_config.yaml"
    base = build_base_model(config_file, state, CPU, FP32, 128)
    lora = build_lora_model(
        config_file, state, hyperparameters, LoRALayersConfig(), CPU, FP32, 1337, 128
    )
    return checkpoint_dir, base, lora


def _train(objective: LoRAObjective, model: Any, hyperparameters: dict[str, Any]) -> None:
    base = objective._prepare_base()
    train_loader, val_loader = objective._loaders(base, objective._load_splits())
    settings = TrainConfig(max_steps=4, micro_batch_size=4, global_batch_size=4, lr_warmup_steps=0)
    fine_tune(model, train_loader, val_loader, settings, hyperparameters, CPU, FP32)


def _sample_tokens(vocab_size: int) -> torch.Tensor:
    return torch.randint(0, vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))


def test_untrained_adapter_is_noop(cache_dir: Path, data_file: Path) -> None:
    objective = _objective(cache_dir, data_file)
    _, base, lora = _models(objective, TRAINED)
    lora.eval()
    tokens = _sample_tokens(base.config.vocab_size)

    lora_b = [p for name, p in lora.named_parameters() if name.endswith("lora_B")]
    assert len(lora_b) == base.config.n_layer
    assert all(bool(torch.all(p == 0)) for p in lora_b)
    with torch.no_grad():
        assert torch.equal(lora(tokens), base(tokens))


def test_merged_logits_equal_unmerged(cache_dir: Path, data_file: Path) -> None:
    objective = _objective(cache_dir, data_file)
    _, base, lora = _models(objective, TRAINED)
    _train(objective, lora, TRAINED)
    lora.eval()
    tokens = _sample_tokens(base.config.vocab_size)

    with torch.no_grad():
        unmerged = lora(tokens)
        merge_adapter(lora, TRAINED)
        merged = lora(tokens)
        base_logits = base(tokens)

    assert torch.allclose(merged, unmerged, rtol=0, atol=1e-5)
    # The adapter was trained, so the comparison above is not between two base models.
    assert (merged - base_logits).abs().max() > 1e-3


def test_litgpt_merge_of_saved_adapter_matches(
    cache_dir: Path, data_file: Path, tmp_path: Path
) -> None:
    from litgpt import Config
    from litgpt import GPT
    from litgpt.scripts.merge_lora import merge_lora

    objective = _objective(cache_dir, data_file)
    checkpoint_dir, base, lora = _models(objective, TRAINED)
    _train(objective, lora, TRAINED)
    lora.eval()
    folder = tmp_path / "trial"
    save_trial_checkpoint(
        lora, folder, checkpoint_dir, TRAINED, LoRALayersConfig(), "32-true", False
    )
    merge_adapter(lora, TRAINED)
    merge_lora(checkpoint_dir=folder)
    reloaded = GPT(Config.from_file(folder / "model_config.yaml"))
    reloaded.load_state_dict(torch.load(folder / "lit_model.pth", weights_only=True))
    reloaded.eval()
    tokens = _sample_tokens(base.config.vocab_size)

    with torch.no_grad():
        assert torch.allclose(reloaded(tokens), lora(tokens), rtol=0, atol=1e-5)


def test_merge_rejects_other_alpha(cache_dir: Path, data_file: Path) -> None:
    objective = _objective(cache_dir, data_file)
    _, _, lora = _models(objective, TRAINED)

    with pytest.raises(RuntimeError, match="alpha=16"):
        merge_adapter(lora, {**TRAINED, "lora_alpha": 16})


def test_zero_learning_rate_reproduces_base_score(cache_dir: Path, data_file: Path) -> None:
    frozen = {**TRAINED, "learning_rate": 0.0, "lora_alpha": 64, "lora_dropout": 0.3}
    objective = _objective(cache_dir, data_file, **_fixed_only(frozen))
    base_metrics = objective.evaluate_base_model()
    study = optuna.create_study(direction=objective.direction)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]

    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value == base_metrics["val_loss"]
    assert trial.user_attrs["mmlu_tiny/acc"] == base_metrics["mmlu_tiny/acc"]

    trained = _objective(cache_dir, data_file, **_fixed_only(TRAINED))
    assert trained(optuna.trial.FixedTrial({})) < base_metrics["val_loss"] - 1e-3


def test_complete_trial_records_attributes(cache_dir: Path, data_file: Path) -> None:
    objective = _objective(cache_dir, data_file, train={"initial_validation": True})
    study = optuna.create_study(
        storage=f"sqlite:///{data_file.parent / 'attributes.db'}",
        direction=objective.direction,
        sampler=optuna.samplers.RandomSampler(seed=1),
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    attributes = trial.user_attrs

    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value == attributes["val_loss"]
    assert sorted(trial.intermediate_values) == [0, 2, 4, 6]
    assert trial.intermediate_values[6] == pytest.approx(trial.value, abs=1e-5)
    assert attributes["hyperparameters"] == trial.params
    assert attributes["steps"] == 6
    assert attributes["fine_tune_seconds"] > 0
    assert attributes["evaluation_seconds"] > 0
    assert 0.0 <= attributes["mmlu_tiny/acc"] <= 1.0
    folder = Path(attributes["checkpoint_dir"])
    assert folder == data_file.parent / "checkpoints" / study.study_name / "trial-00000"
    assert (folder / "lit_model.pth.lora").is_file()
    assert (folder / "hyperparameters.yaml").is_file()


def test_maximized_metric_reports_negated_loss(cache_dir: Path, data_file: Path) -> None:
    objective = _objective(
        cache_dir, data_file, evaluation={"metric": "mmlu_tiny/acc"}, output={"save": "none"}
    )
    study = optuna.create_study(direction=objective.direction)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]

    assert objective.direction == "maximize"
    assert trial.value == trial.user_attrs["mmlu_tiny/acc"]
    assert trial.intermediate_values[6] == pytest.approx(-trial.user_attrs["val_loss"], abs=1e-5)
    assert "checkpoint_dir" not in trial.user_attrs


def test_missing_data_fails_trial_and_study_continues(cache_dir: Path, data_file: Path) -> None:
    late_file = data_file.parent / "late" / "alpaca.json"
    objective = _objective(cache_dir, late_file)

    def provide_data(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        late_file.parent.mkdir(exist_ok=True)
        shutil.copy(data_file, late_file)

    study = optuna.create_study(direction=objective.direction)
    study.optimize(objective, n_trials=2, callbacks=[provide_data])
    failed, completed = study.trials

    assert failed.state == optuna.trial.TrialState.FAIL
    assert "Data file not found" in failed.user_attrs["failure"]
    assert str(late_file) in failed.user_attrs["failure"]
    assert failed.user_attrs[ENVIRONMENT_FAILURE_ATTR] is True
    assert completed.state == optuna.trial.TrialState.COMPLETE


def test_missing_checkpoint_fails_trial(cache_dir: Path, data_file: Path, tmp_path: Path) -> None:
    objective = _objective(
        cache_dir, data_file, model={"checkpoint_dir": str(tmp_path / "absent")}
    )
    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]

    assert trial.state == optuna.trial.TrialState.FAIL
    assert "Base checkpoint folder not found" in trial.user_attrs["failure"]


def test_nan_loss_fails_trial_and_study_continues(cache_dir: Path, data_file: Path) -> None:
    objective = _objective(
        cache_dir,
        data_file,
        search_space={"learning_rate": {"type": "categorical", "choices": [1e30, 1e-2]}},
    )
    study = optuna.create_study(direction=objective.direction)
    study.enqueue_trial({"learning_rate": 1e30})
    study.enqueue_trial({"learning_rate": 1e-2})
    study.optimize(objective, n_trials=2)
    diverged, completed = study.trials

    assert diverged.state == optuna.trial.TrialState.FAIL
    assert diverged.user_attrs["failure"].startswith("NonFiniteLossError: The training loss is")
    assert completed.state == optuna.trial.TrialState.COMPLETE
    assert math.isfinite(completed.value)


def test_out_of_memory_fails_trial(
    cache_dir: Path, data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_out_of_memory(*args: Any, **kwargs: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("optuna_fractal_objectives.training.fine_tune", run_out_of_memory)
    objective = _objective(cache_dir, data_file)
    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]

    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["failure"].startswith("OutOfMemoryError: CUDA out of memory")


def test_failed_metric_removes_checkpoint(
    cache_dir: Path, data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "optuna_fractal_objectives.evaluation.TaskEvaluator.evaluate",
        lambda *args: {"mmlu_tiny/acc": float("nan")},
    )
    objective = _objective(cache_dir, data_file, evaluation={"metric": "mmlu_tiny/acc"})
    study = optuna.create_study(direction=objective.direction, study_name="nan-metric")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]

    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["failure"] == "NonFiniteLossError: The metric mmlu_tiny/acc is nan."
    assert not (data_file.parent / "checkpoints" / "nan-metric" / "trial-00000").exists()


def test_code_errors_propagate(cache_dir: Path, data_file: Path) -> None:
    objective = _objective(
        cache_dir, data_file, evaluation={"tasks": ["no_such_task"], "metric": "val_loss"}
    )
    study = optuna.create_study()

    with pytest.raises(ValueError, match="no_such_task"):
        study.optimize(objective, n_trials=1)


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_pruner_stops_trial_and_removes_checkpoint(cache_dir: Path, data_file: Path) -> None:
    objective = _objective(cache_dir, data_file)
    study = optuna.create_study(pruner=_AlwaysPrune(), study_name="pruned")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]

    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [2]
    assert trial.user_attrs["pruned_at_step"] == 2
    assert not (data_file.parent / "checkpoints" / "pruned").exists()


def test_trial_makes_no_network_access(
    tmp_path: Path, data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    blocked: list[Any] = []
    original_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family == socket.AF_UNIX or host in ("127.0.0.1", "::1", "localhost"):
            return original_connect(self, address)
        blocked.append(address)
        raise OSError(f"Network access blocked by the test: {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    # A fresh cache folder, so the tiny model build runs under the guard too.
    objective = _objective(tmp_path / "cache", data_file)
    study = optuna.create_study(direction=objective.direction)
    study.optimize(objective, n_trials=1)

    assert blocked == []
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_lm_eval_model_matches_direct_loglikelihood(cache_dir: Path, data_file: Path) -> None:
    from litgpt.tokenizer import Tokenizer
    from lm_eval.api.instance import Instance

    from optuna_fractal_objectives.lm_eval_model import LitGPTEvalModel

    objective = _objective(cache_dir, data_file)
    checkpoint_dir, base, _ = _models(objective, TRAINED)
    tokenizer = Tokenizer(checkpoint_dir)
    pairs = [
        ("Question: what is the capital of France?\nAnswer:", " Paris"),
        ("Question: what is the capital of France?\nAnswer:", " Rome"),
        ("Give three tips for staying healthy. ", "Eat well."),
    ]
    requests = [
        Instance("loglikelihood", {}, pair, index, ("task", index, 1))
        for index, pair in enumerate(pairs)
    ]
    scores = LitGPTEvalModel(base, tokenizer, CPU, FP32, batch_size=2).loglikelihood(requests)

    assert len(scores) == len(pairs)
    for (context, continuation), (score, greedy) in zip(pairs, scores):
        # Trailing spaces of the context are scored as part of the continuation.
        stripped = context.rstrip(" ")
        continuation = context[len(stripped) :] + continuation
        context_ids = tokenizer.encode(stripped, bos=True).tolist()
        whole = tokenizer.encode(stripped + continuation, bos=True).tolist()
        with torch.no_grad():
            logits = base(torch.tensor([whole[:-1]]))[0]
        log_probs = torch.log_softmax(logits, dim=-1)
        positions = range(len(context_ids) - 1, len(whole) - 1)
        expected = sum(log_probs[i, whole[i + 1]].item() for i in positions)
        assert score == pytest.approx(expected, abs=1e-4)
        assert isinstance(greedy, bool)


def test_mmlu_loader_reads_bundled_csv() -> None:
    path = PACKAGE_DIR / "tasks" / "mmlu_tiny" / "utils.py"
    spec = importlib.util.spec_from_file_location("mmlu_tiny_utils", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dataset = module.load_mmlu_subject("management", version=1.0)

    assert {name: len(split) for name, split in dataset.items()} == {
        "dev": 5,
        "validation": 11,
        "test": 103,
    }
    first = dataset["test"][0]
    assert first["subject"] == "management"
    assert len(first["choices"]) == 4
    assert first["answer"] in (0, 1, 2, 3)
    with pytest.raises(FileNotFoundError, match="no_such_subject"):
        module.load_mmlu_subject("no_such_subject")


def test_concurrent_builds_share_one_model(tmp_path: Path) -> None:
    spec = dict(TINY_SPEC, pretrain_steps=5)
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        import torch
        torch.set_num_threads(1)
        from optuna_fractal_objectives.config import TinyModelConfig
        from optuna_fractal_objectives.tiny_model import ensure_tiny_model
        spec = {spec!r}
        spec["pretrain_data"] = Path(spec["pretrain_data"])
        print(ensure_tiny_model(TinyModelConfig(**spec), Path({str(tmp_path)!r})))
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300)[0].strip() for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0]
    assert outputs[0] == outputs[1]
    folders = sorted(path.name for path in (tmp_path / "base-models").iterdir() if path.is_dir())
    assert folders == [Path(outputs[0]).name]
    assert (Path(outputs[0]) / "build.json").is_file()


def test_tiny_build_is_reused(cache_dir: Path) -> None:
    from optuna_fractal_objectives import tiny_model

    config = LoRAConfig.from_dict(_config_dict(cache_dir, Path("unused.json")), cache_dir)
    spec = config.model.tiny
    assert spec is not None
    first = ensure_tiny_model(spec, cache_dir)
    marker = (first / "build.json").stat().st_mtime_ns

    assert ensure_tiny_model(spec, cache_dir) == first
    assert (first / "build.json").stat().st_mtime_ns == marker
    assert tiny_model._build_key(dataclasses.replace(spec, seed=1)) not in first.name
