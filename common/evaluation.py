"""Generic evaluation measures and their figures, for any classifier or embedding script.

- calibration: accuracy, expected calibration error (ECE), mean max-probability, and the
  reliability diagram (`plot_reliability`).
- retrieval: candidate sets, recall@1 and MRR with ties at their expected value, the random
  baseline, ranking by cosine (`rank_by_cosine`) and a bag-of-words baseline.
- features: accuracy with the intra/inter-class distance ratio, and a 2-D scatter
  (`plot_features`).
- `evaluate`: a measure on validation, then once on the sealed test set, printed;
  `evaluate_calibration`, `evaluate_features` (with their figures) and `evaluate_retrieval` do it
  for Keras models.
- `plot_learning_curves`: several fits' histories in one figure.
"""

import numpy as np

from common.runs import figure_row, plot_history, save_figure
from common.split import SealedTestSet
from common.word_vectors import unit_rows

CALIBRATION_BINS = 15
CANDIDATES = 100  # the right answer and 99 random others


def calibration(probabilities, labels, bins=CALIBRATION_BINS):
    """Accuracy, expected calibration error (equal-width bins), mean max-probability, bin table."""
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)[1:-1]
    bin_of = np.clip(np.digitize(confidence, edges, right=True), 0, bins - 1)
    counts = np.bincount(bin_of, minlength=bins)
    mean_confidence = np.bincount(bin_of, confidence, bins) / np.maximum(counts, 1)
    bin_accuracy = np.bincount(bin_of, correct, bins) / np.maximum(counts, 1)
    ece = float(np.sum(counts / len(labels) * np.abs(bin_accuracy - mean_confidence)))
    table = {"count": counts, "confidence": mean_confidence, "accuracy": bin_accuracy}
    results = {"accuracy": float(correct.mean()), "ece": ece}
    return {**results, "mean_max_probability": float(confidence.mean()), "bins": table}


def plot_reliability(results, path):
    """One reliability diagram per {name: calibration(...)}, side by side."""
    plt, figure, axes = figure_row(len(results), 5, 4.5)
    for axis, (name, result) in zip(axes, results.items()):
        accuracy = result["bins"]["accuracy"]
        bins = np.arange(len(accuracy)) / len(accuracy)
        axis.bar(bins, accuracy, 1 / len(accuracy), align="edge", edgecolor="k", label="accuracy")
        axis.plot([0, 1], [0, 1], "r--", label="perfect calibration")
        confidence = result["mean_max_probability"]
        title = f"{name}: ECE {result['ece']:.4f}, mean max-prob {confidence:.3f}"
        axis.set(xlabel="confidence (max probability)", ylabel="accuracy", title=title)
        axis.legend(loc="upper left")
    save_figure(figure, path)


def candidate_sets(count, rng, candidates=CANDIDATES):
    """Row i: the right answer i first, then candidates − 1 distinct other answers of the split."""
    if count < candidates:
        raise ValueError(f"need at least {candidates} pairs to rank against, got {count}")
    others = np.stack([rng.choice(count - 1, candidates - 1, replace=False) for _ in range(count)])
    others += others >= np.arange(count)[:, None]  # skip the right answer's own index
    return np.concatenate([np.arange(count)[:, None], others], axis=1)


def ranking_metrics(scores, candidates):
    """recall@1 and MRR of column 0 of `candidates` under a (questions, answers) score matrix. Ties
    count at their expected value, so a constant scorer gets exactly the random baseline."""
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    better = (candidate_scores[:, 1:] > candidate_scores[:, :1]).sum(1)
    tied = (candidate_scores[:, 1:] == candidate_scores[:, :1]).sum(1)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, candidates.shape[1] + 1))])
    reciprocal = (harmonic[better + tied + 1] - harmonic[better]) / (tied + 1)
    recall = float(np.mean((better == 0) / (tied + 1)))
    return {"recall_at_1": recall, "mrr": float(reciprocal.mean())}


def random_ranking(candidates=CANDIDATES):
    """The chance scorer's recall@1 and MRR (H_n / n)."""
    return {"recall_at_1": 1 / candidates, "mrr": float(np.mean(1 / np.arange(1, candidates + 1)))}


def cosine_matrix(a, b):
    return unit_rows(a) @ unit_rows(b).T


def rank_by_cosine(encodings, rng, candidates=CANDIDATES):
    """{name: (question vectors, answer vectors)} -> {name: recall@1 and MRR of each right answer
    by cosine}, all on the same candidate sets, and the random scorer's."""
    count = len(next(iter(encodings.values()))[0])
    sets = candidate_sets(count, rng, candidates)
    ranked = {name: ranking_metrics(cosine_matrix(*pair), sets) for name, pair in encodings.items()}
    return {**ranked, "random": random_ranking(candidates)}


def bag_of_words(ids, vocabulary_size, first_word=2):
    """Word-count vectors of padded id rows; ids below `first_word` (padding, unknown) dropped."""
    counts = np.zeros((len(ids), vocabulary_size), "float32")
    np.add.at(counts, (np.repeat(np.arange(len(ids)), ids.shape[1]), ids.ravel()), 1)
    counts[:, :first_word] = 0
    return counts


def intra_inter_ratio(features, labels):
    """Mean distance to the own class mean / mean distance between class means (lower: tighter)."""
    classes = np.unique(labels)
    means = np.stack([features[labels == k].mean(0) for k in classes])
    intra = np.linalg.norm(features - means[np.searchsorted(classes, labels)], axis=1).mean()
    between = np.linalg.norm(means[:, None] - means[None], axis=-1)
    return float(intra / between[np.triu_indices(len(classes), 1)].mean())


def feature_measures(features, probabilities, labels):
    """A classifier's accuracy and the intra/inter-class ratio of its features."""
    accuracy = float(np.mean(probabilities.argmax(1) == labels))
    return {"accuracy": accuracy, "intra_inter_ratio": intra_inter_ratio(features, labels)}


def plot_features(features, labels, results, path, class_names):
    """2-D scatter of {name: features} (a PCA projection above two dimensions), titled with each
    results[name]["intra_inter_ratio"]."""
    plt, figure, axes = figure_row(len(features), 5, 4.5)
    for axis, (name, points) in zip(axes, features.items()):
        title = f"{name}: intra/inter {results[name]['intra_inter_ratio']:.3f}"
        if points.shape[1] > 2:
            centred = points - points.mean(0)
            points = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
            title += " (PCA of features)"
        colours = dict(c=labels, cmap="tab10", vmin=0, vmax=len(class_names) - 1)
        dots = axis.scatter(points[:, 0], points[:, 1], s=2, **colours)
        axis.set_title(title)
    classes = [class_names[k] for k in np.unique(labels)]
    axes[-1].legend(dots.legend_elements()[0], classes, fontsize=7, loc="best")
    save_figure(figure, path)


def evaluate(measure, validation_rows, test_rows):
    """measure(rows) -> {model: {metric: value}} on validation, then once on the sealed test set;
    prints every model's scalar metrics."""
    results = {"validation": measure(validation_rows)}
    results["test"] = SealedTestSet(test_rows).evaluate(measure)
    for part in ("validation", "test"):
        for name, result in results[part].items():
            numbers = [f"{key} {value:.4f}" for key, value in result.items() if np.isscalar(value)]
            print(f"{part:10s} {name:20s} {'  '.join(numbers)}")
    return results


def plot_learning_curves(histories, path, title=""):
    """{fit name: history} in one runs.plot_history figure, each curve's fit in brackets (a fit
    named "" adds none); the `seconds` column is left out."""
    curves = {}
    for name, history in histories.items():
        suffix = f" ({name})" if name else ""
        curves.update({key + suffix: values for key, values in history.items() if key != "seconds"})
    plot_history(curves, path, title)


def evaluate_calibration(models, x, y, validation_rows, test_rows, path):
    """calibration() of each {name: model x -> probabilities} on validation and once on the sealed
    test set; the test set's reliability diagrams at `path`."""

    def measure(rows):
        return {
            name: calibration(model.predict(x[rows], verbose=0), y[rows])
            for name, model in models.items()
        }

    results = evaluate(measure, validation_rows, test_rows)
    plot_reliability(results["test"], path)
    return results


def evaluate_features(models, x, y, validation_rows, test_rows, path, class_names):
    """feature_measures() of each {name: model x -> [features, probabilities]} on validation and
    once on the sealed test set; the test set's feature scatter at `path`."""
    outputs = {}  # by model, the last measure's: the test set's

    def measure(rows):
        outputs.update({name: model.predict(x[rows], verbose=0) for name, model in models.items()})
        return {name: feature_measures(*output, y[rows]) for name, output in outputs.items()}

    results = evaluate(measure, validation_rows, test_rows)
    features = {name: output[0] for name, output in outputs.items()}
    plot_features(features, y[test_rows], results["test"], path, class_names)
    return results


def evaluate_retrieval(encoders, questions, answers, validation_rows, test_rows, seed=0):
    """rank_by_cosine() of each {name: (question encoder, answer encoder)} on word-id rows (ids 0
    and 1: padding, unknown), beside a bag-of-words baseline ("bag_of_words_cosine") and the random
    scorer, on validation and once on the sealed test set; candidate sets drawn from `seed`."""

    def measure(rows):
        ids = questions[rows], answers[rows]
        pairs = {
            name: [encoder.predict(text, verbose=0) for encoder, text in zip(pair, ids)]
            for name, pair in encoders.items()
        }
        size = max(int(text.max()) for text in ids) + 1  # unused ids would add zero columns only
        pairs["bag_of_words_cosine"] = [bag_of_words(text, size) for text in ids]
        return rank_by_cosine(pairs, np.random.default_rng(seed))

    return evaluate(measure, validation_rows, test_rows)
