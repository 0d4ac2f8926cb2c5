from __future__ import annotations

from fractions import Fraction

from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_fractal._search_space import make_dimension
from optuna_fractal._tree import PartitionTree
from optuna_fractal._tree import ROOT_ID


def _tree(k: int = 3, **distributions) -> PartitionTree:
    return PartitionTree(
        [make_dimension(name, dist) for name, dist in sorted(distributions.items())], k
    )


def test_root_centre_is_cube_centre() -> None:
    tree = _tree(x=FloatDistribution(0, 1), y=FloatDistribution(0, 1))
    assert tree.centre_key(tree.root.cell) == (Fraction(1, 2), Fraction(1, 2))


def test_continuous_split_makes_k_equal_parts() -> None:
    tree = _tree(x=FloatDistribution(0, 1))
    children = tree.expand(ROOT_ID)
    assert [c.id for c in children] == ["r.0", "r.1", "r.2"]
    assert [tree.axis_bounds(0, c.cell[0]) for c in children] == [
        (0.0, 1 / 3),
        (1 / 3, 2 / 3),
        (2 / 3, 1.0),
    ]
    assert [c.inherits for c in children] == [False, True, False]


def test_even_k_has_no_inheriting_child() -> None:
    tree = _tree(k=2, x=FloatDistribution(0, 1))
    children = tree.expand(ROOT_ID)
    assert [c.inherits for c in children] == [False, False]


def test_middle_child_keeps_centre_exactly_deep() -> None:
    tree = _tree(x=FloatDistribution(0, 1))
    node = tree.root
    for _ in range(20):
        children = tree.expand(node.id)
        middle = children[1]
        assert tree.centre_key(middle.cell) == tree.centre_key(node.cell)
        node = children[0]


def test_widest_side_is_split_first() -> None:
    tree = _tree(x=FloatDistribution(0, 1), y=FloatDistribution(0, 1))
    (a, b, c) = tree.expand(ROOT_ID)
    assert tree.split_axis(tree.root.cell) == 0
    # After the x split, y is the widest side of every child.
    assert tree.split_axis(a.cell) == 1
    assert tree.split_axis(b.cell) == 1


def test_node_cell_is_function_of_id() -> None:
    first = _tree(x=FloatDistribution(0, 1), n=IntDistribution(0, 10))
    second = _tree(x=FloatDistribution(0, 1), n=IntDistribution(0, 10))
    for tree in (first, second):
        tree.expand("r")
        tree.expand("r.2")
        tree.expand("r.2.0")
    assert {i: n.cell for i, n in first.nodes.items()} == {
        i: n.cell for i, n in second.nodes.items()
    }


def test_discrete_split_never_below_one_value() -> None:
    tree = _tree(n=IntDistribution(0, 1))
    children = tree.expand(ROOT_ID)
    assert [c.cell[0] for c in children] == [(0, 1), (1, 2)]
    assert not tree.is_splittable(children[0])
    assert not tree.is_splittable(children[1])
    with pytest.raises(ValueError, match="cannot be split"):
        tree.expand(children[0].id)


def test_discrete_middle_child_inherits_when_centres_match() -> None:
    tree = _tree(n=IntDistribution(0, 3))
    children = tree.expand(ROOT_ID)
    assert [c.cell[0] for c in children] == [(0, 1), (1, 3), (3, 4)]
    assert tree.centre_key(tree.root.cell) == (1,)
    assert [c.inherits for c in children] == [False, True, False]


def test_two_values_split_into_two_children() -> None:
    tree = _tree(flag=CategoricalDistribution([True, False]))
    children = tree.expand(ROOT_ID)
    assert len(children) == 2
    # The root's centre is the first choice, so the first child shares it.
    assert [c.inherits for c in children] == [True, False]


def test_log_int_split_in_log_space() -> None:
    tree = _tree(rank=IntDistribution(1, 64, log=True))
    children = tree.expand(ROOT_ID)
    sizes = [c.cell[0][1] - c.cell[0][0] for c in children]
    # Thirds of [log 0.5, log 64.5]: about 1..2, 3..12, 13..64.
    assert sizes[0] < sizes[1] < sizes[2]
    assert sum(sizes) == 64


def test_all_single_value_cell_is_terminal() -> None:
    tree = _tree(a=IntDistribution(1, 1), b=CategoricalDistribution(["only"]))
    assert tree.split_axis(tree.root.cell) is None
    assert tree.child_cells(tree.root) == []


def test_invalid_k_is_rejected() -> None:
    for k in (1, 0, -3, 2.5, True):
        with pytest.raises(ValueError, match="k must be an integer >= 2"):
            PartitionTree([make_dimension("x", FloatDistribution(0, 1))], k)  # type: ignore[arg-type]
