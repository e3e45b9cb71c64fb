"""The bookkeeping every in-memory `keras.utils.PyDataset` here needs: which rows make batch `index`.

A subclass keeps its arrays, calls `super().__init__(len(data), batch_size, shuffle, seed, **kwargs)` and builds
each batch in `__getitem__` from `self.rows(index)`. With `shuffle`, the row order is redrawn from `self.rng` at the
end of every epoch (the article's generators: one permutation per pass, the last batch may be partial); subclasses
draw their own randomness (flips, …) from the same `self.rng`, so one seed fixes a whole run.
"""
import math

import keras
import numpy as np


class ShuffledBatches(keras.utils.PyDataset):
    def __init__(self, size, batch_size, shuffle=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(size) if shuffle else np.arange(size)

    def __len__(self):
        return math.ceil(self.size / self.batch_size)

    def rows(self, index):
        """Row numbers of batch `index` in the current epoch's order."""
        return self.order[index * self.batch_size:(index + 1) * self.batch_size]

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(self.size)
