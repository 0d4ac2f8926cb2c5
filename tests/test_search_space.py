from __future__ import annotations

import math

from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_fractal._search_space import make_dimension
from optuna_fractal._search_space import SearchSpace


def test_continuous_linear_maps_unit_to_range() -> None:
    dim = make_dimension("x", FloatDistribution(-5.0, 5.0))
    assert dim.is_continuous
    assert dim.value_at_unit(0.0) == -5.0
    assert dim.value_at_unit(0.5) == 0.0
    assert dim.value_at_unit(1.0) == 5.0


def test_continuous_log_splits_in_log_space() -> None:
    dim = make_dimension("lr", FloatDistribution(1e-6, 1e-2, log=True))
    assert math.isclose(dim.value_at_unit(0.5), 1e-4, rel_tol=1e-12)
    assert math.isclose(dim.unit_of_value(1e-4), 0.5, rel_tol=1e-12)


def test_int_positions_are_bin_centres() -> None:
    dim = make_dimension("n", IntDistribution(0, 3))
    assert dim.n_values == 4
    assert dim.positions == (0.125, 0.375, 0.625, 0.875)
    assert dim.edges == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert [dim.value_at_index(i) for i in range(4)] == [0, 1, 2, 3]
    assert all(isinstance(dim.value_at_index(i), int) for i in range(4))


def test_int_step_values() -> None:
    dim = make_dimension("n", IntDistribution(3, 9, step=2))
    assert dim.n_values == 4
    assert [dim.value_at_index(i) for i in range(4)] == [3, 5, 7, 9]


def test_int_log_bins_are_equal_in_log_space() -> None:
    dim = make_dimension("rank", IntDistribution(1, 64, log=True))
    assert dim.n_values == 64
    assert dim.edges is not None and dim.positions is not None
    assert dim.edges[0] == 0.0 and dim.edges[-1] == 1.0
    # Low integers own wide bins, high integers narrow ones.
    assert dim.edges[1] - dim.edges[0] > 10 * (dim.edges[64] - dim.edges[63])
    assert all(a < b for a, b in zip(dim.positions, dim.positions[1:]))


def test_float_step_values_are_multiples() -> None:
    dim = make_dimension("d", FloatDistribution(-10.2, 10.2, step=0.1))
    assert dim.n_values == 205
    values = [dim.value_at_index(i) for i in range(205)]
    assert values[0] == -10.2
    assert math.isclose(values[-1], 10.2)
    for value in values:
        k = (value + 10.2) / 0.1
        assert abs(k - round(k)) < 1e-8


def test_categorical_is_a_list_of_choices() -> None:
    dim = make_dimension("opt", CategoricalDistribution(["adam", "sgd", "lion"]))
    assert dim.n_values == 3
    assert [dim.value_at_index(i) for i in range(3)] == ["adam", "sgd", "lion"]
    assert dim.index_of_value("lion") == 2


def test_single_point_float_is_one_value() -> None:
    dim = make_dimension("c", FloatDistribution(1.0, 1.0))
    assert dim.n_values == 1
    assert dim.value_at_index(0) == 1.0


def test_search_space_orders_by_name() -> None:
    space = SearchSpace({"b": FloatDistribution(0, 1), "a": IntDistribution(0, 3)})
    assert space.names == ["a", "b"]
    assert space == SearchSpace({"a": IntDistribution(0, 3), "b": FloatDistribution(0, 1)})
    assert space.n_splittable() == 2


def test_empty_search_space_is_rejected() -> None:
    with pytest.raises(ValueError, match="search space is empty"):
        SearchSpace({})
