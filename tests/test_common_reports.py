"""common/reports.py: the confusion matrix, per-class accuracy, most-confused pairs and their figures."""

import csv

import numpy as np

from common import reports

CLASSES = ["cat", "dog", "fox"]


def test_confusion_matrix_counts_true_by_predicted():
    matrix = reports.confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], num_classes=3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert matrix.dtype == np.int64


def test_confusion_matrix_keeps_classes_never_seen():
    matrix = reports.confusion_matrix([0], [0], num_classes=4)
    assert matrix.shape == (4, 4) and matrix.sum() == 1


def test_per_class_csv_lists_worst_first_with_what_each_is_taken_for(tmp_path):
    matrix = np.array([[8, 2, 0], [5, 5, 0], [0, 0, 10]])
    reports.write_per_class_csv(matrix, CLASSES, tmp_path / "per_class.csv")
    with open(tmp_path / "per_class.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["class"] for row in rows] == ["dog", "cat", "fox"]
    assert rows[0] == {
        "class": "dog",
        "images": "10",
        "correct": "5",
        "accuracy": "0.5000",
        "most_confused_with": "cat",
        "times": "5",
    }
    assert rows[2]["most_confused_with"] == "" and rows[2]["times"] == "0"  # never confused


def test_most_confused_pairs_add_both_directions_and_skip_zero():
    matrix = np.array([[8, 2, 1], [5, 5, 0], [0, 0, 10]])
    pairs = reports.most_confused_pairs(matrix, CLASSES)
    assert pairs == [("cat", "dog", 7), ("cat", "fox", 1)]
    assert reports.most_confused_pairs(matrix, CLASSES, top=1) == [("cat", "dog", 7)]
    assert reports.most_confused_pairs(np.eye(3, dtype=int), CLASSES) == []


def test_figures_are_written(tmp_path):
    matrix = np.array([[8, 2, 1], [5, 5, 0], [0, 0, 10]])
    reports.plot_confusion_matrix(matrix, CLASSES, tmp_path / "confusion_matrix.png", "test")
    reports.plot_confused_pairs([], tmp_path / "none.png")  # nothing confused is still a figure
    reports.plot_confused_pairs(reports.most_confused_pairs(matrix, CLASSES), tmp_path / "p.png")
    for name in ("confusion_matrix.png", "none.png", "p.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "confusion_matrix.png",
        "none.png",
        "p.png",
    ]  # no temporary files left
