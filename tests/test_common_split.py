"""common/split.py: the properties of "训练集、验证集和测试集的意义" (spec section 7)."""

import numpy as np
import pytest

from common import split


def assert_partition(parts, n):
    joined = np.concatenate(parts)
    assert len(joined) == n and len(np.unique(joined)) == n  # disjoint and covering
    assert set(joined.tolist()) == set(range(n))


def test_random_split_sizes_are_exact_for_1000_at_8_1_1():
    parts = split.random_split(1000, (8, 1, 1), seed=0)
    assert [len(p) for p in parts] == [800, 100, 100]
    assert_partition(parts, 1000)


@pytest.mark.parametrize("n", [1, 3, 7, 10, 11, 99, 1001])
@pytest.mark.parametrize("ratios", [(8, 1, 1), (1, 1), (0.7, 0.2, 0.1), (3, 0, 1)])
def test_sizes_within_one_item_of_ratio(n, ratios):
    sizes = split.part_sizes(n, ratios)
    exact = n * np.asarray(ratios, float) / np.sum(ratios)
    assert sizes.sum() == n and np.all(np.abs(sizes - exact) < 1)


def test_random_split_accepts_labels_and_is_reproducible():
    labels = np.arange(50) % 3
    first = split.random_split(labels, seed=4)
    assert_partition(first, 50)
    assert all(np.array_equal(a, b) for a, b in zip(first, split.random_split(50, seed=4)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, split.random_split(50, seed=5)))


def test_stratified_split_keeps_class_proportions():
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=997, p=[0.55, 0.25, 0.15, 0.05])
    parts = split.stratified_split(labels, (8, 1, 1), seed=1)
    assert_partition(parts, len(labels))
    for value in range(4):
        count = np.sum(labels == value)
        for part, ratio in zip(parts, (0.8, 0.1, 0.1)):
            assert abs(np.sum(labels[part] == value) - count * ratio) < 1


def test_stratified_split_handles_tiny_classes_deterministically():
    labels = np.array([0] * 20 + [1, 2, 2])
    parts = split.stratified_split(labels, seed=0)
    assert_partition(parts, len(labels))
    assert set(labels[parts[0]]) == {0, 1, 2}  # classes of 1 and 2 items go wholly to train
    assert all(np.array_equal(a, b) for a, b in zip(parts, split.stratified_split(labels, seed=0)))


def test_grouped_split_never_leaks_a_group():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 120, size=2000)
    parts = split.grouped_split(groups, (8, 1, 1), seed=3)
    assert_partition(parts, 2000)
    seen = [set(groups[p].tolist()) for p in parts]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert abs(len(parts[0]) / 2000 - 0.8) < 0.08  # as close as whole groups allow


def test_holdout_per_class_takes_ten_percent_of_each_class():
    labels = np.repeat(np.arange(5), [10, 31, 7, 1, 100])
    train, holdout = split.holdout_per_class(labels, 0.1, seed=0)
    assert_partition((train, holdout), len(labels))
    for value, n in enumerate([10, 31, 7, 1, 100]):
        assert np.sum(labels[train] == value) == max(1, int(n * 0.9))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: split.random_split(10, (-1, 1, 1)), "non-negative"),
        (lambda: split.random_split(10, (0, 0, 0)), "sum to 0"),
        (lambda: split.random_split(2, (8, 1, 1)), "cannot split 2"),
        (lambda: split.stratified_split(np.zeros((3, 2))), "one-dimensional"),
        (lambda: split.grouped_split([1, 1, 1], (8, 1, 1)), "groups"),
        (lambda: split.holdout_per_class([0, 1], 1.5), "fraction"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_sealed_test_set_is_used_exactly_once():
    sealed = split.SealedTestSet(np.arange(10, 20))
    calls = []
    assert sealed.evaluate(lambda idx: calls.append(idx) or len(idx)) == 10
    assert sealed.uses == 1
    with pytest.raises(RuntimeError, match="already used"):
        sealed.take()
    assert len(sealed.take(allow_again=True)) == 10 and sealed.uses == 2
