"""common/attribution.py: occlusion, gradients on any backend, integrated gradients, deletion curves,
the HTML page; a linear toy model stands in for a classifier (rnn_saliency's own LSTM: its tests)."""

import numpy as np
import pytest
from keras import ops

from common import attribution

WEIGHTS = np.array([0.0, 2.0, -1.0, 0.5, -3.0])  # per token id; id 0 is padding and adds nothing


def toy_predict(ids):
    """P(positive) = sigmoid(Σ weight of each word)."""
    return 1 / (1 + np.exp(-WEIGHTS[ids].sum(axis=1)))


def test_occlusion_is_the_drop_when_each_word_is_removed():
    ids = np.array([[1, 2, 3, 0], [4, 3, 0, 0]])
    scores = attribution.occlusion_scores(toy_predict, ids)
    original = toy_predict(ids)
    for row, column in [(0, 0), (0, 2), (1, 0), (1, 1)]:
        removed = ids.copy()
        removed[row, column] = 0
        sign = 1 if original[row] >= 0.5 else -1
        expected = sign * (original[row] - toy_predict(removed)[row])
        assert scores[row, column] == pytest.approx(expected)
    assert (scores[ids == 0] == 0).all()
    assert scores[0, 0] > 0 and scores[1, 0] > 0  # each row's strongest word supports its class


def test_deletion_curves_remove_the_top_k_words_by_score():
    ids = np.array([[1, 2, 3, 0]])  # p > 0.5: word 1 (+2) supports, word 2 (−1) counteracts
    good = attribution.deletion_curves(
        toy_predict, ids, np.array([[3.0, 1.0, 2.0, 9.0]]), (1, 2, 1.0)
    )
    bad = attribution.deletion_curves(
        toy_predict, ids, np.array([[1.0, 3.0, 2.0, 9.0]]), (1, 2, 1.0)
    )
    assert good[0] > 0 > bad[0]  # a faithful ranking drops the prediction, padding is never removed
    everything = toy_predict(ids)[0] - toy_predict(np.zeros((1, 1), int))[0]
    assert good[2] == pytest.approx(everything) == bad[2]


def test_compare_methods_adds_a_random_ranking(capsys):
    ids = np.array([[1, 2, 3, 0], [4, 3, 1, 2]])
    methods = {"occlusion": lambda rows: attribution.occlusion_scores(toy_predict, rows)}
    results = attribution.compare_methods(methods, toy_predict, ids, seed=0, ks=(1, 2))
    assert set(results) == {"occlusion", "random"} and "AOPC" in capsys.readouterr().out
    for result in results.values():
        assert len(result["curve"]) == 2 and result["aopc"] == pytest.approx(
            np.mean(result["curve"])
        )
    assert results["occlusion"]["aopc"] >= results["random"]["aopc"]


@pytest.mark.backend
def test_gradients_and_integrated_gradients_of_a_linear_model_are_exact():
    direction = np.array([1.0, -2.0, 0.5], "float32")

    def signed_probability(embedded, mask, sign):  # Σ over unmasked words of ⟨v, direction⟩
        masked = embedded * ops.expand_dims(ops.cast(mask, embedded.dtype), -1)
        return ops.sum(masked * ops.convert_to_tensor(direction), axis=(1, 2)) * sign

    values, gradients = attribution.gradient_function(signed_probability)(
        np.ones((2, 4, 3), "float32"), np.ones((2, 4), bool), np.array([1.0, -1.0], "float32")
    )
    np.testing.assert_allclose(values, [-2.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(gradients[1], -np.tile(direction, (4, 1)), rtol=1e-6)
    weights = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    ids = np.array([[1, 5, 0], [2, 2, 3]])
    sign = np.array([1.0, -1.0])
    for steps in (None, 4):  # linear: gradient × input and integrated gradients agree exactly
        scores = attribution.embedding_attributions(
            signed_probability, weights, [(np.arange(2), ids)], ids.shape, sign, steps
        )
        np.testing.assert_allclose(
            scores, sign[:, None] * (weights[ids] @ direction) * (ids != 0), rtol=1e-5, atol=1e-6
        )


def test_html_page_shades_and_escapes_each_word():
    page = attribution.html_page(
        [{"ranking": [(1, "<b>", -0.3), (0, "好", 0.6)], "probability": 0.9}]
    )
    assert page.index("好") < page.index("&lt;b&gt;") and "rgba(0,160,0,1.00)" in page
    assert "rgba(220,0,0,0.60)" in page and "p(positive) = 0.900" in page
