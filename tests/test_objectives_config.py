"""Tests of the YAML config and search space of the LoRA objective (no torch needed)."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest
import yaml

from optuna_fractal_objectives import build_objective
from optuna_fractal_objectives import bundled_config_names
from optuna_fractal_objectives import config_path
from optuna_fractal_objectives import load_config
from optuna_fractal_objectives import LoRAConfig
from optuna_fractal_objectives.search_space import PARAMETER_DEFAULTS
from optuna_fractal_objectives.search_space import suggest_parameters


def _minimal(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": {"checkpoint_dir": str(tmp_path / "checkpoint")},
        "data": {"path": str(tmp_path / "data.json")},
        "train": {"max_steps": 10},
    }
    data.update(sections)
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bundled_config_names() -> None:
    assert bundled_config_names() == ["cpu-tiny", "llama-3.2-1b"]


def test_cpu_tiny_paths_exist_and_are_absolute() -> None:
    config = load_config(config_path("cpu-tiny"))

    assert config.model.tiny is not None
    for path in (
        config.data.path,
        config.model.tiny.pretrain_data,
        config.evaluation.include_path,
    ):
        assert path is not None
        assert path.is_absolute()
        assert path.exists()
    assert config.source == config_path("cpu-tiny")


def test_cpu_tiny_search_space_is_reference_space() -> None:
    space = load_config(config_path("cpu-tiny")).search_space

    assert space == {
        "lora_r": IntDistribution(2, 64),
        "lora_alpha": IntDistribution(1, 64),
        "lora_dropout": FloatDistribution(0.0, 0.5),
        "learning_rate": FloatDistribution(1e-10, 1e-1, log=True),
        "weight_decay": FloatDistribution(1e-5, 1e-1, log=True),
    }


def test_gpu_config_targets_reference_experiment() -> None:
    config = load_config(config_path("llama-3.2-1b"))

    assert config.model.checkpoint_dir is not None
    assert config.model.checkpoint_dir.name == "Llama-3.2-1B"
    assert config.model.checkpoint_dir.is_absolute()
    assert config.evaluation.tasks == ("hellaswag", "mmlu")
    assert config.evaluation.metric == "hellaswag/acc_norm"
    assert config.evaluation.direction == "maximize"
    assert config.search_space == load_config(config_path("cpu-tiny")).search_space


def test_build_objective_exposes_space_and_direction() -> None:
    objective = build_objective(config_path("cpu-tiny"))

    assert objective.direction == "minimize"
    assert objective.metric == "val_loss"
    assert list(objective.search_space) == [
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "learning_rate",
        "weight_decay",
    ]


def test_import_stays_light() -> None:
    code = (
        "import sys\n"
        "from optuna_fractal_objectives import build_objective, config_path\n"
        "objective = build_objective(config_path('cpu-tiny'))\n"
        "assert objective.search_space and objective.direction\n"
        "print(sorted(m for m in ('torch', 'litgpt', 'lm_eval') if m in sys.modules))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    ).stdout

    assert output.strip() == "[]"


def test_relative_paths_resolve_against_yaml_folder(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    data = _minimal(tmp_path)
    data["data"] = {"path": "../data/train.json"}
    config = load_config(_write(folder, data))

    assert config.data.path == (tmp_path / "data" / "train.json").resolve()


def test_environment_variables_expand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OF_TEST_ROOT", str(tmp_path))
    config = LoRAConfig.from_dict(_minimal(tmp_path, cache_dir="$OF_TEST_ROOT/cache"), tmp_path)

    assert config.cache_dir == (tmp_path / "cache").resolve()
    assert config.checkpoint_root == (tmp_path / "cache" / "checkpoints").resolve()


def test_unset_environment_variable_rejected(tmp_path: Path) -> None:
    os.environ.pop("OF_TEST_UNSET", None)
    with pytest.raises(ValueError, match="OF_TEST_UNSET"):
        LoRAConfig.from_dict(_minimal(tmp_path, cache_dir="$OF_TEST_UNSET/cache"), tmp_path)


def test_cache_dir_defaults_to_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTUNA_FRACTAL_CACHE", str(tmp_path / "shared-cache"))
    config = LoRAConfig.from_dict(_minimal(tmp_path), tmp_path)

    assert config.cache_dir == (tmp_path / "shared-cache").resolve()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"unknown_section": {}}, "unknown_section"),
        ({"train": {"max_steps": 10, "max_stepz": 3}}, "max_stepz"),
        ({"train": {"max_steps": 10, "devices": 2}}, "CUDA_VISIBLE_DEVICES"),
        ({"train": {"max_steps": 10, "global_batch_size": 6, "micro_batch_size": 4}}, "6"),
        ({"train": {"epochs": None}}, "max_steps or train.epochs"),
        ({"train": {"max_steps": 10, "precision": "16-mixed"}}, "16-mixed"),
        ({"train": {"max_steps": "ten"}}, "train.max_steps"),
        ({"data": {"path": "x.json", "val_split_fraction": 1.5}}, "val_split_fraction"),
        ({"model": {}}, "exactly one of model.checkpoint_dir"),
        ({"lora": {"query": False, "value": False}}, "enable at least one"),
        ({"evaluation": {"metric": "mmlu/acc"}}, "not in evaluation.tasks"),
        ({"evaluation": {"metric": "task/score", "tasks": ["task"]}}, "evaluation.direction"),
        ({"evaluation": {"limit": 2.5}}, "evaluation.limit"),
    ],
)
def test_invalid_config_names_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    data = _minimal(tmp_path)
    data.update(change)

    with pytest.raises(ValueError, match=message):
        load_config(_write(tmp_path, data))


def test_load_config_error_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _minimal(tmp_path, extra=1))

    with pytest.raises(ValueError, match=str(path)):
        load_config(path)


def test_missing_config_file_suggests_config_path() -> None:
    with pytest.raises(FileNotFoundError, match=r"config_path\('cpu-tiny'\)"):
        load_config("cpu-tiny")


def test_unknown_bundled_name_lists_names() -> None:
    with pytest.raises(ValueError, match="cpu-tiny, llama-3.2-1b"):
        config_path("cpu-huge")


def test_direction_inferred_from_metric(tmp_path: Path) -> None:
    evaluation = {"metric": "hellaswag/acc_norm", "tasks": ["hellaswag"]}
    config = LoRAConfig.from_dict(_minimal(tmp_path, evaluation=evaluation), tmp_path)

    assert config.evaluation.direction == "maximize"


def test_explicit_direction_overrides_inference(tmp_path: Path) -> None:
    evaluation = {"metric": "task/score", "tasks": ["task"], "direction": "minimize"}
    config = LoRAConfig.from_dict(_minimal(tmp_path, evaluation=evaluation), tmp_path)

    assert config.evaluation.direction == "minimize"


def test_exponent_strings_read_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"model: {{checkpoint_dir: {tmp_path}}}\n"
        f"data: {{path: {tmp_path}/d.json}}\n"
        "train: {max_steps: 1}\n"
        "search_space:\n"
        "  learning_rate: {type: float, low: 1e-10, high: 1e-1, log: true}\n"
        "fixed:\n"
        "  weight_decay: 1e-4\n"
    )
    config = load_config(path)

    assert config.search_space["learning_rate"] == FloatDistribution(1e-10, 1e-1, log=True)
    assert config.fixed["weight_decay"] == 1e-4


def test_list_form_search_space(tmp_path: Path) -> None:
    search_space = [
        {"name": "lora_r", "type": "categorical", "choices": [4, 8, 16]},
        {"name": "learning_rate", "type": "float", "low": 1e-4, "high": 1e-2, "step": None},
    ]
    config = LoRAConfig.from_dict(_minimal(tmp_path, search_space=search_space), tmp_path)

    assert config.search_space["lora_r"] == CategoricalDistribution([4, 8, 16])
    assert config.search_space["learning_rate"] == FloatDistribution(1e-4, 1e-2)


@pytest.mark.parametrize(
    ("search_space", "message"),
    [
        ({"lora_rank": {"type": "int", "low": 2, "high": 8}}, "lora_rank"),
        ({"lora_r": {"type": "float", "low": 2.0, "high": 8.0}}, "int or categorical"),
        ({"lora_r": {"type": "int", "low": 0, "high": 8}}, "rank 0"),
        ({"lora_r": {"type": "categorical", "choices": [0, 4]}}, "rank 0"),
        ({"lora_dropout": {"type": "float", "low": 0.0, "high": 1.0}}, r"\[0, 1\)"),
        ({"lora_alpha": {"type": "int", "low": 0, "high": 8}}, "lora_alpha"),
        ({"learning_rate": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, "log"),
        ({"learning_rate": {"type": "float", "low": 1e-3}}, "'low' and 'high'"),
        ({"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "scale": 2}}, "scale"),
        ({"weight_decay": {"type": "uniform", "low": 0.0, "high": 0.1}}, "uniform"),
        ({"weight_decay": {"type": "categorical", "choices": []}}, "non-empty"),
    ],
)
def test_invalid_search_space_names_parameter(
    tmp_path: Path, search_space: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LoRAConfig.from_dict(_minimal(tmp_path, search_space=search_space), tmp_path)


def test_parameter_both_searched_and_fixed_rejected(tmp_path: Path) -> None:
    data = _minimal(
        tmp_path,
        search_space={"lora_r": {"type": "int", "low": 2, "high": 8}},
        fixed={"lora_r": 4},
    )

    with pytest.raises(ValueError, match="both searched and fixed"):
        LoRAConfig.from_dict(data, tmp_path)


def test_unsearched_parameters_get_defaults(tmp_path: Path) -> None:
    data = _minimal(
        tmp_path,
        search_space={"lora_r": {"type": "int", "low": 2, "high": 8}},
        fixed={"learning_rate": 0.0},
    )
    config = LoRAConfig.from_dict(data, tmp_path)

    assert config.fixed == {
        "learning_rate": 0.0,
        "lora_alpha": PARAMETER_DEFAULTS["lora_alpha"],
        "lora_dropout": PARAMETER_DEFAULTS["lora_dropout"],
        "weight_decay": PARAMETER_DEFAULTS["weight_decay"],
    }


def test_suggest_parameters_samples_space_and_adds_fixed() -> None:
    config = load_config(config_path("cpu-tiny"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = suggest_parameters(trial, config.search_space, config.fixed)

    assert set(values) == set(PARAMETER_DEFAULTS)
    assert trial.params == values
    assert 2 <= values["lora_r"] <= 64
    assert 1e-10 <= values["learning_rate"] <= 1e-1
