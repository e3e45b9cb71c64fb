"""Confusion reports: the matrix and its figure, per-class accuracy, most-confused pairs."""

import csv
from pathlib import Path

import numpy as np

from common import runs


def confusion_matrix(labels, predictions, num_classes):
    """counts[true, predicted] as int64."""
    pairs = np.asarray(labels, np.int64) * num_classes + np.asarray(predictions, np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path):
    figure.tight_layout()
    with runs.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    _pyplot().close(figure)


def plot_confusion_matrix(matrix, classes, path, title=""):
    """The matrix as a heat map with its counts, true classes down, predictions across."""
    figure, axis = _pyplot().subplots(figsize=(7, 6))
    image = axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        axis.text(column, row, str(count), ha="center", va="center", fontsize=7, color=color)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.colorbar(image)
    _save(figure, path)


def write_per_class_csv(matrix, classes, path):
    """One row per class, worst first: images, correct, accuracy, the class it is most taken for."""
    off_diagonal = matrix - np.diag(np.diag(matrix))
    totals = matrix.sum(1)
    with runs.atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "images", "correct", "accuracy", "most_confused_with", "times"])
        for c in np.argsort(np.diag(matrix) / np.maximum(totals, 1), kind="stable"):
            other = int(off_diagonal[c].argmax())
            confused = off_diagonal[c, other]
            accuracy = f"{matrix[c, c] / max(totals[c], 1):.4f}"
            other_name = classes[other] if confused else ""
            writer.writerow([classes[c], totals[c], matrix[c, c], accuracy, other_name, confused])


def most_confused_pairs(matrix, classes, top=20):
    """[(class, class, count)] of the pairs most often mistaken for each other (both directions)."""
    off_diagonal = matrix - np.diag(np.diag(matrix))
    symmetric = np.triu(off_diagonal + off_diagonal.T, 1)
    order = np.argsort(symmetric, axis=None)[::-1][:top]
    rows, columns = np.unravel_index(order, symmetric.shape)
    return [
        (classes[i], classes[j], int(symmetric[i, j]))
        for i, j in zip(rows, columns)
        if symmetric[i, j]
    ]


def plot_confused_pairs(pairs, path, what="images", kind="class"):
    """A bar per pair from most_confused_pairs, the most confused on top."""
    figure, axis = _pyplot().subplots(figsize=(8, 0.35 * max(len(pairs), 1) + 1.2))
    axis.barh([f"{a} ↔ {b}" for a, b, _ in pairs][::-1], [n for *_, n in pairs][::-1])
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.set_xlabel(f"{what} confused (both directions)")
    axis.set_title(f"The {len(pairs)} most confused {kind} pairs")
    _save(figure, path)


def write_confusion_report(labels, predictions, classes, folder, what="images", kind="class"):
    """per_class.csv and confused_pairs.png in `folder`; returns the 20 most confused pairs."""
    matrix = confusion_matrix(labels, predictions, len(classes))
    write_per_class_csv(matrix, classes, Path(folder) / "per_class.csv")
    pairs = most_confused_pairs(matrix, classes, top=20)
    plot_confused_pairs(pairs, Path(folder) / "confused_pairs.png", what, kind)
    return pairs


def merge_histories(folder, names, columns, title=""):
    """history.csv of several named fits in `folder` (history_<name>.csv, runfolder.fit(name=...)),
    one after another with a `stage` column naming each, and learning_curves.png of `columns`."""
    rows = []
    for name in names:
        path = Path(folder) / f"history_{name}.csv"
        if path.is_file():
            with open(path, newline="") as handle:
                rows += [{"stage": name, **row} for row in csv.DictReader(handle)]
    with runs.atomic_path(Path(folder) / "history.csv") as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    curves = {name: [float(row[name]) for row in rows] for name in columns if name in rows[0]}
    runs.plot_history(curves, Path(folder) / "learning_curves.png", title)
    return rows


def top_classes(names, probabilities, classes, top=5, csv_path=None, kind="class"):
    """The `top` classes of each item with their probabilities: rows [name, class, p, class, p …],
    written to `csv_path` (columns name, <kind>_1, probability_1, …) or printed."""
    top = min(top, len(classes))
    rows = []
    for name, p in zip(names, probabilities):
        best = np.argsort(p)[::-1][:top]
        rows.append([str(name)] + [value for c in best for value in (classes[c], f"{p[c]:.4f}")])
    if csv_path is None:
        for row in rows:
            print(
                f"{row[0]}: " + ", ".join(f"{row[k]} {row[k + 1]}" for k in range(1, len(row), 2))
            )
        return rows
    header = ["image"] + [f"{what}_{k + 1}" for k in range(top) for what in (kind, "probability")]
    with runs.atomic_path(csv_path) as temporary, open(temporary, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    print(f"wrote {len(rows)} rows to {csv_path}")
    return rows
