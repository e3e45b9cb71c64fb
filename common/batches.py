"""The bookkeeping every in-memory `keras.utils.PyDataset` here needs: which rows make batch
`index`.

A subclass keeps its arrays, calls `super().__init__(len(data), batch_size, shuffle, seed,
**kwargs)` and builds each batch in `__getitem__` from `self.rows(index)`. With `shuffle`, the row
order is redrawn from `self.rng` at the end of every epoch (the article's generators: one
permutation per pass, the last batch may be partial); subclasses draw their own randomness (flips,
…) from the same `self.rng`, so one seed fixes a whole run.

`devices` > 1 (data parallelism, common/devices.py): every batch must split evenly, so a shuffled
(training) feed drops the last `size % batch_size % devices` rows of each epoch's order (other rows
every epoch), and an evaluation feed pads its last batch with copies of the last row, weighted 0 by
`weights(index)`. `hosts=(k, n)`: host k of n reads every n-th row of each global batch.
"""

import math

import keras
import numpy as np


class ShuffledBatches(keras.utils.PyDataset):
    def __init__(self, size, batch_size, shuffle=False, seed=0, devices=1, hosts=(0, 1), **kwargs):
        super().__init__(**kwargs)
        if batch_size < 1 or batch_size % devices:
            raise ValueError(
                f"batch_size must be a positive multiple of {devices} devices, got {batch_size}"
            )
        self.size, self.batch_size, self.shuffle, self.devices, self.hosts = (
            size,
            batch_size,
            shuffle,
            devices,
            hosts,
        )
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(size) if shuffle else np.arange(size)
        self.used = size - size % batch_size % devices if shuffle else size + -size % devices
        self.dropped = max(
            size - self.used, 0
        )  # rows of each training epoch left out so batches split evenly

    def __len__(self):
        return math.ceil(self.used / self.batch_size)

    def positions(self, index):
        """Positions in the (trimmed or padded) epoch order that make batch `index`, this host's
        share."""
        host, hosts = self.hosts
        return np.arange(index * self.batch_size, min((index + 1) * self.batch_size, self.used))[
            host::hosts
        ]

    def rows(self, index):
        """Row numbers of batch `index` in the current epoch's order (padding repeats the last
        row)."""
        return self.order[np.minimum(self.positions(index), self.size - 1)]

    def weights(self, index):
        """None without padding, else 1 for real rows and 0 for padding: pass them as sample
        weights."""
        return (
            None
            if self.devices == 1 or self.shuffle
            else (self.positions(index) < self.size).astype("float32")
        )

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(self.size)
