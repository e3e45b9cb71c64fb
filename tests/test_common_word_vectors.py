"""common/word_vectors.py: analogy files and 3CosAdd, and the sentence-vector sentiment test."""

import numpy as np
import pytest

from common import word_vectors


def test_analogy_file_parsing_and_oov_counting(tmp_path):
    path = tmp_path / "analogies.txt"
    path.write_text(": capitals\nA a B b\nB b A a\nA a Z z\n\n: other\nA a B b\n", encoding="utf-8")
    sections = word_vectors.read_analogy_file(path)
    assert list(sections) == ["capitals", "other"] and len(sections["capitals"]) == 3
    offset = np.array([0, 0, 0, 1.0])
    base = {"A": [1, 0, 0, 0], "B": [0, 1, 0, 0], "C": [0, 0, 1, 0]}
    words = ["A", "a", "B", "b", "C"]
    vectors = np.array(
        [base["A"], np.add(base["A"], offset), base["B"], np.add(base["B"], offset), base["C"]]
    )
    results = word_vectors.evaluate_analogies(
        sections, vectors, {w: k for k, w in enumerate(words)}
    )
    assert results["capitals"] == {"correct": 2, "asked": 2, "oov": 1, "accuracy": 1.0}
    assert results["overall"]["asked"] == 3 and results["overall"]["oov"] == 1
    path.write_text(": s\nA a B\n", encoding="utf-8")
    with pytest.raises(ValueError):
        word_vectors.read_analogy_file(path)


def test_malformed_analogy_files_are_one_line_errors(tmp_path):
    path = tmp_path / "analogies.txt"
    for content, message in (
        (b": s\nA a B\n", "analogies.txt:2: expected 4 words, got 3"),
        (b": only a header\n", "holds no 'A B C D' lines"),
        (b"\xff A a B b\n", r"not a readable UTF-8 file \(UnicodeDecodeError\)"),
    ):
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            word_vectors.read_analogy_file(path)


def test_sentiment_accuracies_select_on_validation_and_look_at_test_once(monkeypatch):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    features = rng.normal(size=(400, 6)) + labels[:, None] * 1.5  # separable, with a little overlap
    looks = []
    original = word_vectors.SealedTestSet.take
    monkeypatch.setattr(
        word_vectors.SealedTestSet,
        "take",
        lambda self, allow_again=False: looks.append(1) or original(self, allow_again),
    )
    result = word_vectors.sentiment_accuracies(features, labels, seed=1)
    assert looks == [1] and result["split"] == [320, 40, 40] and result["texts"] == 400
    for key in ("lr_valid", "lr_test", "mlp_valid", "mlp_test"):
        assert 0.85 <= result[key] <= 1.0, key
    assert result["lr_C"] in (0.01, 0.1, 1.0, 10.0)
