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


def test_with_devices_a_training_feed_drops_its_last_rows_so_every_batch_splits_evenly():
    batches = ShuffledBatches(
        250, 30, shuffle=True, seed=0, devices=3
    )  # 250 = 8 × 30 + 10: 1 row dropped
    parts = [batches.rows(k) for k in range(len(batches))]
    assert batches.dropped == 1 and [len(p) % 3 for p in parts] == [0] * 9 and len(parts[-1]) == 9
    assert len(set(np.concatenate(parts).tolist())) == 249 and batches.weights(0) is None
    dropped = set()
    for _ in range(20):  # the order is redrawn, so a different row sits out each epoch
        dropped |= set(range(250)) - set(
            np.concatenate([batches.rows(k) for k in range(len(batches))]).tolist()
        )
        batches.on_epoch_end()
    assert len(dropped) > 10


def test_with_devices_an_evaluation_feed_pads_with_zero_weights():
    batches = ShuffledBatches(
        7, 4, devices=2
    )  # 7 rows → 8: batches of 4 and 4, the last row repeated
    assert len(batches) == 2 and batches.dropped == 0
    assert batches.rows(1).tolist() == [4, 5, 6, 6] and batches.weights(1).tolist() == [1, 1, 1, 0]
    assert ShuffledBatches(7, 4).weights(1) is None and ShuffledBatches(7, 4).rows(1).tolist() == [
        4,
        5,
        6,
    ]


def test_each_host_reads_its_share_of_every_global_batch():
    shares = [ShuffledBatches(10, 4, hosts=(host, 2), devices=2) for host in (0, 1)]
    assert [share.rows(0).tolist() for share in shares] == [[0, 2], [1, 3]]
    assert sorted(np.concatenate([share.rows(2) for share in shares]).tolist()) == [8, 9]


def test_batch_size_must_divide_by_the_devices():
    with pytest.raises(ValueError, match="multiple of 3"):
        ShuffledBatches(10, 4, devices=3)
