"""The stratified split: disjoint, complete, balanced by the documented rounding rule."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipeline.library.split import part_sizes, stratified_split

labels_strategy = st.lists(st.integers(0, 1), min_size=1, max_size=400).map(np.array)
fractions = st.tuples(
    st.sampled_from([0.0, 0.1, 0.15, 0.2, 0.25, 0.29, 0.33]),
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.5]),
)


@given(labels=labels_strategy, val_test=fractions, seed=st.integers(0, 2**32 - 1))
def test_parts_are_disjoint_sorted_and_cover_every_row(labels, val_test, seed):
    split = stratified_split(labels, *val_test, seed=seed)
    everything = np.concatenate(list(split.parts().values()))
    assert sorted(everything.tolist()) == list(range(len(labels)))
    for rows in split.parts().values():
        assert np.array_equal(rows, np.sort(rows))


@given(labels=labels_strategy, val_test=fractions, seed=st.integers(0, 2**32 - 1))
def test_each_class_is_split_by_the_floor_rule(labels, val_test, seed):
    val, test = val_test
    split = stratified_split(labels, val, test, seed=seed)
    for label in (0, 1):
        class_size = int((labels == label).sum())
        counts = tuple(int((labels[rows] == label).sum()) for rows in split.parts().values())
        assert counts == part_sizes(class_size, val, test)


@given(labels=labels_strategy, seed=st.integers(0, 2**32 - 1))
def test_same_seed_gives_the_same_split(labels, seed):
    first, second = (
        stratified_split(labels, 0.2, 0.2, seed),
        stratified_split(labels, 0.2, 0.2, seed),
    )
    for part in ("train", "val", "test"):
        assert np.array_equal(first.parts()[part], second.parts()[part])


def test_another_seed_gives_another_split():
    labels = np.arange(1000) % 2
    assert not np.array_equal(
        stratified_split(labels, 0.2, 0.2, 1).test, stratified_split(labels, 0.2, 0.2, 2).test
    )


def test_rounding_rule_floors_the_exact_decimal_product():
    assert part_sizes(100, 0.29, 0.2) == (51, 29, 20)  # 0.29 * 100 is 28.999... in floating point
    assert part_sizes(7, 0.2, 0.2) == (5, 1, 1)
    assert part_sizes(10, 0.25, 0.25) == (6, 2, 2)
