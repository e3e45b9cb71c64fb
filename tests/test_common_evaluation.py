"""common/evaluation.py: calibration (ECE), retrieval ranking with ties, the intra/inter-class ratio,
the bag-of-words baseline, the figures, and the validation-then-sealed-test evaluation."""

import numpy as np
import pytest

from common import evaluation


def test_ranking_metrics_perfect_and_constant_scorers():
    candidates = evaluation.candidate_sets(150, np.random.default_rng(0))
    assert evaluation.ranking_metrics(np.eye(150), candidates) == {"recall_at_1": 1.0, "mrr": 1.0}
    # ties count at their expected value: a constant scorer is the random baseline exactly
    constant = evaluation.ranking_metrics(np.zeros((150, 150)), candidates)
    assert constant["recall_at_1"] == pytest.approx(0.01)
    assert constant["mrr"] == pytest.approx(np.mean(1 / np.arange(1, 101)))
    assert constant == pytest.approx(evaluation.random_ranking(100))


def test_candidate_sets_start_with_the_right_answer_and_are_distinct():
    candidates = evaluation.candidate_sets(120, np.random.default_rng(1))
    assert candidates.shape == (120, 100) and (candidates[:, 0] == np.arange(120)).all()
    assert all(len(set(row)) == 100 for row in candidates)
    with pytest.raises(ValueError, match="need at least 100 pairs"):
        evaluation.candidate_sets(99, np.random.default_rng(1))


def test_rank_by_cosine_shares_the_candidate_sets_and_adds_the_random_scorer():
    vectors = np.random.default_rng(2).normal(size=(120, 8))
    ranked = evaluation.rank_by_cosine(
        {"same": (vectors, vectors), "constant": (np.ones((120, 3)), np.ones((120, 3)))},
        np.random.default_rng(0),
    )
    assert ranked["same"] == {"recall_at_1": 1.0, "mrr": 1.0}
    assert ranked["constant"] == pytest.approx(ranked["random"])


def test_bag_of_words_counts_words_and_drops_padding_and_unknown():
    counts = evaluation.bag_of_words(np.array([[5, 5, 3, 1, 0, 0], [2, 0, 0, 0, 0, 0]]), 8)
    assert counts.tolist() == [[0, 0, 0, 1, 0, 2, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0]]


def test_calibration_of_known_predictions():
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.6, 0.4]])
    result = evaluation.calibration(probabilities, np.array([0, 0, 0, 1]))
    assert result["accuracy"] == 0.75 and result["mean_max_probability"] == pytest.approx(0.775)
    assert result["ece"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.1)  # two bins: |1−.95| and |.5−.6|


def test_intra_inter_ratio_is_scale_invariant_and_shrinks_with_tighter_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 50)
    means = np.array([[0, 0], [10, 0], [0, 10]])
    loose, tight = (means[labels] + spread * rng.normal(size=(150, 2)) for spread in (3, 1))
    ratio = evaluation.intra_inter_ratio
    assert ratio(tight, labels) < ratio(loose, labels)
    assert ratio(5 * loose, labels) == pytest.approx(ratio(loose, labels))
    probabilities = np.eye(3)[labels]
    measures = evaluation.feature_measures(tight, probabilities, labels)
    assert measures == {"accuracy": 1.0, "intra_inter_ratio": ratio(tight, labels)}


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    probabilities = rng.dirichlet(np.ones(3), 60)
    calibrations = {"a": evaluation.calibration(probabilities, labels)}
    evaluation.plot_reliability(calibrations, tmp_path / "reliability.png")
    features = {"2-D": rng.normal(size=(60, 2)), "PCA": rng.normal(size=(60, 5))}
    results = {
        name: evaluation.feature_measures(f, probabilities, labels) for name, f in features.items()
    }
    evaluation.plot_features(features, labels, results, tmp_path / "features.png", ["x", "y", "z"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["features.png", "reliability.png"]


def test_evaluate_measures_validation_then_the_sealed_test_once(capsys):
    seen = []

    def measure(rows):
        seen.append(list(rows))
        return {"model": {"accuracy": 0.5, "table": [1, 2]}}

    results = evaluation.evaluate(measure, np.array([0, 1]), np.array([2, 3]))
    assert seen == [[0, 1], [2, 3]] and results["test"] == {
        "model": {"accuracy": 0.5, "table": [1, 2]}
    }
    shown = capsys.readouterr().out
    assert "validation model" in " ".join(shown.split()) and "accuracy 0.5000" in shown
    assert "table" not in shown  # only the scalar metrics are printed
