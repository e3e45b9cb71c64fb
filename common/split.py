"""Train / validation / test splitting, after "训练集、验证集和测试集的意义"
(kexue.fm/archives/4638).

The three parts are disjoint and together cover every item; 8:1:1 is the usual ratio. The
validation part picks epochs and hyper-parameters; the test part is looked at once, at the end
(`SealedTestSet`).

Every function takes a seed and returns index arrays (sorted within each part), so the same seed
gives the same split and callers index their own arrays with them.
"""

import numpy as np

DEFAULT_RATIOS = (8, 1, 1)


def _check_ratios(ratios):
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.ndim != 1 or len(ratios) < 1:
        raise ValueError(f"ratios must be a non-empty sequence of numbers, got {ratios!r}")
    if np.any(~np.isfinite(ratios)) or np.any(ratios < 0):
        raise ValueError(f"ratios must be finite and non-negative, got {ratios.tolist()}")
    if ratios.sum() <= 0:
        raise ValueError(f"ratios must not sum to 0, got {ratios.tolist()}")
    return ratios / ratios.sum()


def part_sizes(n, ratios=DEFAULT_RATIOS):
    """Sizes of the parts of n items: largest-remainder rounding, so each is within one item of
    n·ratio.

    Ties in the remainders go to the earlier part (train before validation before test).
    """
    fractions = _check_ratios(ratios)
    exact = n * fractions
    sizes = np.floor(exact + 1e-9).astype(np.int64)
    remainder = exact - sizes
    order = sorted(range(len(sizes)), key=lambda k: (-round(remainder[k], 9), k))
    for k in order[: n - int(sizes.sum())]:
        sizes[k] += 1
    return sizes


def _as_count(n_or_labels):
    if np.isscalar(n_or_labels):
        n = int(n_or_labels)
        if n < 0:
            raise ValueError(f"number of items must be non-negative, got {n}")
        return n
    return len(n_or_labels)


def random_split(n_or_labels, ratios=DEFAULT_RATIOS, seed=0):
    """Uniform random split of N items (an int, or any sized sequence) into len(ratios) parts.

    >>> [len(p) for p in random_split(1000, (8, 1, 1), seed=0)]
    [800, 100, 100]
    """
    n = _as_count(n_or_labels)
    sizes = part_sizes(n, ratios)
    if n < np.count_nonzero(np.asarray(ratios, dtype=float) > 0):
        raise ValueError(f"cannot split {n} items into {len(sizes)} non-empty parts")
    permutation = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum(sizes)[:-1]
    return tuple(np.sort(part) for part in np.split(permutation, bounds))


def stratified_split(labels, ratios=DEFAULT_RATIOS, seed=0):
    """Split so that every class keeps its proportion in each part, within one item per class.

    Each class is split on its own with `part_sizes`. A class too small to reach every part fills
    the parts with the largest shares first (with 8:1:1, a class of one or two items goes wholly to
    train); this is deterministic and never raises.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    _check_ratios(ratios)
    rng = np.random.default_rng(seed)
    parts = [[] for _ in ratios]
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        bounds = np.cumsum(part_sizes(len(members), ratios))[:-1]
        for part, chunk in zip(parts, np.split(members, bounds)):
            part.append(chunk)
    return tuple(
        np.sort(np.concatenate(part)) if part else np.array([], np.int64) for part in parts
    )


def grouped_split(groups, ratios=DEFAULT_RATIOS, seed=0):
    """Split items so that all items sharing a group key (a document, a source image) land in one
    part.

    Groups are shuffled and dealt out in order; a group goes to the part whose share of the running
    item count its middle falls in, so part sizes follow the ratios as closely as whole groups
    allow.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups must be one-dimensional, got shape {groups.shape}")
    fractions = _check_ratios(ratios)
    unique, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(unique) < np.count_nonzero(fractions > 0):
        raise ValueError(
            f"cannot split {len(unique)} groups into "
            f"{np.count_nonzero(fractions > 0)} non-empty parts"
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    middles = (np.cumsum(counts[order]) - counts[order] / 2) / len(groups)
    part_of_group = np.empty(len(unique), np.int64)
    part_of_group[order] = np.searchsorted(np.cumsum(fractions)[:-1], middles, side="right")
    part_of_item = part_of_group[inverse]
    return tuple(np.flatnonzero(part_of_item == k) for k in range(len(fractions)))


def holdout_per_class(labels, fraction=0.1, seed=0):
    """Hold out `fraction` of every class (the dog article's per-class 10% validation).

    Each class of n items keeps int(n·(1−fraction)) items for training, at least one, as the
    article's `train_frac=0.9` did. Returns (train_indices, holdout_indices).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, holdout = [], []
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        keep = max(1, int(len(members) * (1 - fraction) + 1e-9))
        train.append(members[:keep])
        holdout.append(members[keep:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(holdout))


class SealedTestSet:
    """Hands out the test indices once, after selection is done, and refuses a second look.

    >>> test = SealedTestSet(test_indices)
    >>> accuracy = test.evaluate(lambda idx: model.evaluate(x[idx], y[idx]))  # once
    >>> test.evaluate(...)  # RuntimeError, unless allow_again=True
    """

    def __init__(self, indices):
        self._indices = np.asarray(indices)
        self.uses = 0

    def __len__(self):
        return len(self._indices)

    def take(self, allow_again=False):
        if self.uses and not allow_again:
            raise RuntimeError(
                "the test set was already used once; choose models on validation and look at test "
                "only at the end (pass allow_again=True to override knowingly)"
            )
        self.uses += 1
        return self._indices

    def evaluate(self, evaluate_fn, allow_again=False):
        return evaluate_fn(self.take(allow_again=allow_again))
