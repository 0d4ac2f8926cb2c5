"""Parse the LoRA search space from a config mapping and sample it from an Optuna trial.

The objective has five hyperparameters. Each one is either searched (it has an entry in
``search_space``) or held constant (an entry in ``fixed``, or the default below).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


# Values used for a hyperparameter that is neither searched nor fixed in the config.
# rank, alpha and dropout are the defaults of `litgpt finetune lora` (litgpt 0.5.13);
# learning rate and weight decay are the defaults of torch.optim.AdamW.
PARAMETER_DEFAULTS: dict[str, int | float] = {
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "learning_rate": 1e-3,
    "weight_decay": 0.01,
}

PARAMETER_TYPES = ("float", "int", "categorical")
_SPEC_KEYS = {"name", "type", "low", "high", "log", "step", "choices"}


def parse_search_space(data: Any) -> dict[str, BaseDistribution]:
    """Convert the ``search_space`` section of a config into Optuna distributions.

    The section is either a mapping from parameter name to spec or a list of specs with a
    ``name`` key. A spec has ``type`` (``float``, ``int`` or ``categorical``); ``float``
    and ``int`` take ``low``, ``high`` and optionally ``log`` and ``step``; ``categorical``
    takes ``choices``.

    Args:
        data: The parsed YAML value of the section. ``None`` means an empty search space.

    Returns:
        The distributions, keyed by parameter name, in the order of the section.

    Raises:
        ValueError: The section names an unknown parameter, has an invalid spec, or
            allows a value outside the parameter's valid range.
    """
    if data is None:
        return {}
    if isinstance(data, Mapping):
        items = [(name, spec) for name, spec in data.items()]
    elif isinstance(data, list):
        items = []
        for spec in data:
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise ValueError(
                    f"Invalid search_space entry {spec!r}: a list entry must be a mapping "
                    "with a 'name' key."
                )
            items.append((spec["name"], spec))
    else:
        raise ValueError(
            f"Invalid search_space {data!r}: expected a mapping from parameter name to spec."
        )

    space: dict[str, BaseDistribution] = {}
    for name, spec in items:
        _check_parameter_name(name, "search_space")
        if name in space:
            raise ValueError(f"Parameter '{name}' appears twice in search_space.")
        distribution = _to_distribution(name, spec)
        _check_distribution_domain(name, distribution)
        space[name] = distribution
    return space


def parse_fixed(data: Any, search_space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """Merge the ``fixed`` section of a config with the defaults of unsearched parameters.

    Args:
        data: The parsed YAML value of the section, a mapping from name to value, or
            ``None``.
        search_space: The searched parameters; none of them may also be fixed.

    Returns:
        The constant value of every parameter that is not in ``search_space``.

    Raises:
        ValueError: A name is unknown or also searched, or a value is invalid.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"Invalid fixed section {data!r}: expected a mapping from name to value.")

    fixed: dict[str, Any] = {}
    for name, value in data.items():
        _check_parameter_name(name, "fixed")
        if isinstance(value, str):
            value = _to_float(name, "value", value)
        if name in search_space:
            raise ValueError(
                f"Parameter '{name}' is both searched and fixed; remove it from one of the "
                "sections 'search_space' and 'fixed'."
            )
        _check_value(name, value)
        fixed[name] = value
    for name, default in PARAMETER_DEFAULTS.items():
        if name not in search_space and name not in fixed:
            fixed[name] = default
    return fixed


def suggest_parameters(
    trial: optuna.trial.BaseTrial,
    search_space: Mapping[str, BaseDistribution],
    fixed: Mapping[str, Any],
) -> dict[str, Any]:
    """Sample every searched parameter from ``trial`` and add the fixed ones.

    Args:
        trial: The trial that samples the parameters.
        search_space: The searched parameters and their distributions.
        fixed: The constant values of the other parameters.

    Returns:
        A value for each of the five hyperparameters in ``PARAMETER_DEFAULTS``.
    """
    values: dict[str, Any] = {}
    for name, distribution in search_space.items():
        if isinstance(distribution, FloatDistribution):
            values[name] = trial.suggest_float(
                name,
                distribution.low,
                distribution.high,
                step=distribution.step,
                log=distribution.log,
            )
        elif isinstance(distribution, IntDistribution):
            values[name] = trial.suggest_int(
                name,
                distribution.low,
                distribution.high,
                step=distribution.step,
                log=distribution.log,
            )
        else:
            assert isinstance(distribution, CategoricalDistribution)
            values[name] = trial.suggest_categorical(name, distribution.choices)
    values.update(fixed)
    return values


def _check_parameter_name(name: Any, section: str) -> None:
    if name not in PARAMETER_DEFAULTS:
        raise ValueError(
            f"Unknown parameter {name!r} in {section}; valid names are "
            f"{', '.join(PARAMETER_DEFAULTS)}."
        )


def _to_distribution(name: str, spec: Any) -> BaseDistribution:
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"Invalid spec {spec!r} for parameter '{name}': expected a mapping such as "
            "{type: float, low: 0.0, high: 0.5}."
        )
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ValueError(
            f"Unknown keys {sorted(unknown)} in the spec of parameter '{name}'; valid keys are "
            f"{sorted(_SPEC_KEYS - {'name'})}."
        )
    kind = spec.get("type")
    if kind not in PARAMETER_TYPES:
        raise ValueError(
            f"Invalid type {kind!r} for parameter '{name}'; use one of "
            f"{', '.join(PARAMETER_TYPES)}."
        )

    if kind == "categorical":
        extra = {"low", "high", "log", "step"} & set(spec)
        if extra or "choices" not in spec:
            raise ValueError(
                f"A categorical parameter takes only 'choices'; parameter '{name}' has "
                f"{sorted(spec)}."
            )
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"The choices of parameter '{name}' must be a non-empty list.")
        return CategoricalDistribution(choices)

    if "choices" in spec or "low" not in spec or "high" not in spec:
        raise ValueError(
            f"A {kind} parameter needs 'low' and 'high' and takes no 'choices'; parameter "
            f"'{name}' has {sorted(spec)}."
        )
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"'log' of parameter '{name}' must be true or false, got {log!r}.")
    try:
        if kind == "float":
            return FloatDistribution(
                _to_float(name, "low", spec["low"]),
                _to_float(name, "high", spec["high"]),
                log=log,
                step=None if spec.get("step") is None else _to_float(name, "step", spec["step"]),
            )
        return IntDistribution(
            _to_int(name, "low", spec["low"]),
            _to_int(name, "high", spec["high"]),
            log=log,
            step=_to_int(name, "step", spec.get("step", 1)),
        )
    except ValueError as error:
        raise ValueError(f"Invalid spec for parameter '{name}': {error}") from error


def _to_float(name: str, key: str, value: Any) -> float:
    # PyYAML reads exponent notation without a dot (1e-3) as a string.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"'{key}' of parameter '{name}' must be a number, got {value!r}.")
    return float(value)


def _to_int(name: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"'{key}' of parameter '{name}' must be an integer, got {value!r}.")
    return value


def _check_distribution_domain(name: str, distribution: BaseDistribution) -> None:
    if name == "lora_r" and isinstance(distribution, FloatDistribution):
        raise ValueError("Parameter 'lora_r' must have type int or categorical, not float.")
    if isinstance(distribution, CategoricalDistribution):
        for choice in distribution.choices:
            _check_value(name, choice)
    else:
        # Every valid range is an interval, so checking both ends covers the values between.
        _check_value(name, distribution.low)
        _check_value(name, distribution.high)


def _check_value(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Parameter '{name}' must be a number, got {value!r}.")
    if name == "lora_r" and (not isinstance(value, int) or value < 1):
        raise ValueError(
            f"lora_r must be an integer >= 1, got {value!r}; rank 0 would disable LoRA."
        )
    if name == "lora_alpha" and not value > 0:
        raise ValueError(f"lora_alpha must be > 0, got {value!r}.")
    if name == "lora_dropout" and not 0 <= value < 1:
        raise ValueError(f"lora_dropout must be in [0, 1), got {value!r}.")
    if name in ("learning_rate", "weight_decay") and not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}.")
