"""Which input words a classifier of token ids relies on, and how faithful each ranking is.

Token ids are rows padded (and words removed) with 0; `predict(ids)` gives P(positive) per row.
Every score is for the predicted class (`predicted_sign`: +1 where p ≥ 0.5, else −1).

- `occlusion_scores`: leave one word out (set it to 0): how far the predicted class's p drops.
- `gradient_function`: (values, d Σ values / d inputs) of a function built from keras ops, on the
  tensorflow, jax or torch backend: the one backend-specific step.
- `embedding_attributions`: gradient × input (no steps) or integrated gradients from the zero word
  vector (midpoint rule), per word, from a function of the word vectors.
- `deletion_curves`, `compare_methods`, `plot_deletion_curves`: remove each ranking's top-k words
  and watch the predicted class's probability drop; AOPC is the mean drop over the ks.
- `html_page`: rankings [(position, word, score)] as HTML, each word shaded by its score.
"""

import html
import time

import keras
import numpy as np
from keras import ops

from common import runs

DELETION_KS = (1, 2, 3, 4, 5, 0.1, 0.2)  # words removed: counts, then fractions of the sentence


def predicted_sign(probabilities):
    return np.where(np.asarray(probabilities) >= 0.5, 1.0, -1.0)


def occlusion_scores(predict, ids):
    """Leave-one-out: the drop in the predicted class's probability when word i becomes 0."""
    original = predict(ids)
    rows, columns = np.nonzero(ids)
    variants = ids[rows].copy()
    variants[np.arange(len(rows)), columns] = 0
    scores = np.zeros(ids.shape, np.float64)
    scores[rows, columns] = predicted_sign(original)[rows] * (original[rows] - predict(variants))
    return scores


def gradient_function(function):
    """Compile function(inputs, *arguments) → (B,) values, built from keras ops, into one returning
    (values, d sum(values) / d inputs) as NumPy."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def compiled(inputs, *arguments):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                values = function(inputs, *arguments)
            return values, tape.gradient(values, inputs)
    elif backend == "jax":
        import jax

        def total(*inputs):
            values = function(*inputs)
            return values.sum(), values

        gradient = jax.jit(jax.value_and_grad(total, has_aux=True))

        def compiled(*inputs):
            (_, values), gradients = gradient(*inputs)
            return values, gradients
    elif backend == "torch":

        def compiled(inputs, *arguments):
            inputs = ops.convert_to_tensor(inputs).detach().requires_grad_(True)
            values = function(inputs, *[ops.convert_to_tensor(a) for a in arguments])
            values.sum().backward()
            return values.detach(), inputs.grad.detach()
    else:
        raise ValueError(f"gradients are implemented for tensorflow, jax and torch, not {backend}")
    return lambda *inputs: tuple(np.asarray(ops.convert_to_numpy(t)) for t in compiled(*inputs))


def embedding_attributions(signed_probability, weights, chunks, shape, sign, steps=None):
    """Gradient × input (steps=None), or integrated gradients from the zero word vector with `steps`
    midpoint steps, summed over each word vector: a (rows, columns) array of `shape`.

    signed_probability(embedded (B,T,E), mask (B,T), sign (B,)) → (B,) the predicted class's
    probability (up to a constant), in keras ops; `weights`: the embedding matrix; `chunks`: pairs
    (row indices, their ids, trimmed to a length), each computed in one call."""
    scores = np.zeros(shape, np.float64)
    alphas = np.array([1.0] if steps is None else (np.arange(steps) + 0.5) / steps, "float32")
    compiled = gradient_function(signed_probability)
    for rows, part in chunks:
        embedded = weights[part]  # (B, T, E)
        scaled = (alphas[:, None, None, None] * embedded[None]).reshape(-1, *embedded.shape[1:])
        mask = np.tile(part != 0, (len(alphas), 1))
        signs = np.tile(sign[rows], len(alphas)).astype("float32")
        _, gradients = compiled(scaled, mask, signs)
        mean_gradient = gradients.reshape(len(alphas), *embedded.shape).mean(axis=0)
        scores[rows, : part.shape[1]] = (mean_gradient * embedded).sum(-1) * (part != 0)
    return scores


def deletion_curves(predict, ids, scores, ks=DELETION_KS):
    """Mean drop of the predicted class's probability after removing (setting to 0) the top-k words
    by `scores`, for each k (an int: words; a fraction: of the sentence's words, rounded up)."""
    lengths, original = (ids != 0).sum(axis=1), predict(ids)
    order = np.argsort(-np.where(ids != 0, scores, -np.inf), axis=1, kind="stable")
    drops = []
    for k in ks:
        counts = np.minimum(lengths, k if isinstance(k, int) else np.ceil(k * lengths).astype(int))
        removed = np.arange(ids.shape[1])[None, :] < np.asarray(counts).reshape(-1, 1)
        deleted = ids.copy()
        np.put_along_axis(
            deleted, order, np.where(removed, 0, np.take_along_axis(ids, order, 1)), 1
        )
        drops.append(float(np.mean(predicted_sign(original) * (original - predict(deleted)))))
    return drops


def compare_methods(methods, predict, ids, seed, ks=DELETION_KS):
    """Deletion curve, AOPC and sentences/s of each method ({name: ids → scores}) and of a random
    ranking (seeded)."""
    rng, results = np.random.default_rng(seed), {}
    for name, method in dict(methods, random=lambda rows: rng.random(rows.shape)).items():
        started = time.perf_counter()
        scores = method(ids)
        speed = len(ids) / (time.perf_counter() - started)
        curve = deletion_curves(predict, ids, scores, ks)
        results[name] = {
            "curve": curve,
            "aopc": float(np.mean(curve)),
            "sentences_per_second": speed,
        }
        print(f"  {name:24s} AOPC {np.mean(curve):.4f}  {speed:9.1f} sentences/s", flush=True)
    return results


def plot_deletion_curves(results, path, ks=DELETION_KS):
    """compare_methods' curves, one line a method, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    labels = [str(k) if isinstance(k, int) else f"{k:.0%}" for k in ks]
    for name, result in results.items():
        axis.plot(labels, result["curve"], marker="o", label=f"{name} (AOPC {result['aopc']:.3f})")
    axis.set_xlabel("words removed (top-k by each ranking)")
    axis.set_ylabel("drop in predicted-class probability")
    axis.legend(fontsize=8)
    figure.tight_layout()
    with runs.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)


def html_page(results):
    """[{"ranking": [(position, word, score)], "probability": p}] as an HTML page, each word shaded
    by its score: green supports the prediction, red counteracts it."""
    page = "<!doctype html><meta charset='utf-8'><title>word importance</title>\n"
    for result in results:
        page += "<p>"
        for position, word, score in sorted(result["ranking"]):
            colour = f"{'0,160,0' if score >= 0 else '220,0,0'},{min(1, abs(score) * 2):.2f}"
            page += f'<span title="{position}: {score:+.4f}" style="background:rgba({colour})">'
            page += f"{html.escape(word)}</span>"
        page += f" <small>p(positive) = {result['probability']:.3f}</small></p>\n"
    return page
