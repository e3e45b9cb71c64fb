"""common/batches.py: the row bookkeeping shared by the in-memory PyDatasets."""
import numpy as np
import pytest

from common.batches import ShuffledBatches


def test_batches_cover_every_row_once_with_a_partial_last_batch():
    batches = ShuffledBatches(250, 100, shuffle=True, seed=0)
    assert len(batches) == 3
    parts = [batches.rows(k) for k in range(len(batches))]
    assert [len(p) for p in parts] == [100, 100, 50]
    assert sorted(np.concatenate(parts).tolist()) == list(range(250))


def test_order_is_fixed_without_shuffle_and_redrawn_every_epoch_with_it():
    fixed = ShuffledBatches(10, 4)
    fixed.on_epoch_end()
    assert fixed.rows(0).tolist() == [0, 1, 2, 3]
    shuffled = ShuffledBatches(1000, 1000, shuffle=True, seed=3)
    first = shuffled.rows(0).copy()
    shuffled.on_epoch_end()
    assert not np.array_equal(first, shuffled.rows(0)) and sorted(first) == sorted(shuffled.rows(0))
    again = ShuffledBatches(1000, 1000, shuffle=True, seed=3)
    assert np.array_equal(first, again.rows(0))  # one seed, one order


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        ShuffledBatches(10, 0)
