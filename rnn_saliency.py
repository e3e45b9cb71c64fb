"""Which words does an LSTM sentiment classifier rely on? The importance of RNN inputs, checked.

Rebuilds "如何评估RNN中输入的重要性" (kexue.fm/archives/4582): words → Embedding → LSTM → h_n →
Dense(sigmoid). Word w_{i+1} matters as far as its step moved the state towards h_n:
(‖h_n − h_i‖ − ‖h_n − h_{i+1}‖) / ‖h_n‖ with h_0 = 0, so a sentence's scores add up to 1. The
article: ≈90% validation accuracy on its own corpus. Beyond it: deletion curves (AOPC) against
occlusion, gradient × input and integrated gradients, and a TF-IDF logistic-regression baseline.

    python rnn_saliency.py --quick                  # minutes on a CPU: 4,000 training texts
    python rnn_saliency.py --baseline               # the article's recipe + the TF-IDF baseline
    python rnn_saliency.py --improved --baseline    # + word2vec init, dropout, early stopping
    python rnn_saliency.py explain --model runs/rnn_saliency/RUN "发货很快，质量不错" --html a.html
    python rnn_saliency.py predict --model runs/rnn_saliency/RUN --batch sentences.txt  # → .jsonl

Any Keras backend (tensorflow, jax, torch). Details and results: docs/rnn_saliency.md.
"""

import argparse
import json
import logging
import math
from functools import partial
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from common import attribution, runfolder, runs
from common.batches import ShuffledBatches
from common.chinese_text import build_vocabulary, encode, read_labelled_texts, tfidf_baseline
from common.split import SealedTestSet, stratified_split

SCRIPT = "rnn_saliency"
MAXLEN = 100  # the article's truncation length
MIN_COUNT = 10  # the article's vocabulary: words seen at least 10 times (in the training split)
EPOCHS = 5  # the article's
EMBEDDING_SIZE = HIDDEN_SIZE = 128  # the article's widths
# --improved: a larger vocabulary, word vectors started from skip-gram word2vec on the training
# split, dropout on word vectors and LSTM inputs (training only: masked steps unchanged), early stop
IMPROVED = dict(
    min_count=3, epochs=8, patience=2, embedding_dropout=0.4, input_dropout=0.25, word2vec_epochs=10
)
QUICK = {"epochs": 2, "train_size": 4000, "saliency_sentences": 200}
IG_STEPS = 32  # integrated-gradients Riemann steps (midpoint rule)
LENGTH_BUCKET = 20  # batches are trimmed to a multiple of this length: few shapes, little padding
ARTICLE = {"validation_accuracy": 0.90}
ARTICLE_EXAMPLES = (  # the example, then the article's (rankings: docs/rnn_saliency.md)
    "很好，发货很快，质量也不错",
    "总的来说有点乱七八糟的感觉。重复又重复。",
    "很糟糕，没有比这更加糟糕的了，真是太糟糕了",
    "在快乐的地方做着快乐的事情，拥有快乐的心情",
)


# ---- data ----------------------------------------------------------------------------------------
def segment(texts, cache=None):
    """jieba.lcut every text (the article's tokeniser), or the tokens `cache` holds for them."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    stored = runfolder.read_json(cache) if cache and Path(cache).is_file() else {}
    return stored["tokens"] if stored.get("texts") == texts else [jieba.lcut(t) for t in texts]


def trimmed(ids):
    """Without the all-padding columns at the end, to a multiple of LENGTH_BUCKET."""
    used = np.flatnonzero(ids.any(axis=0))
    length = math.ceil((used[-1] + 1 if len(used) else 0) / LENGTH_BUCKET) * LENGTH_BUCKET
    return ids[:, : max(1, min(ids.shape[1], length))]


class Batches(ShuffledBatches):
    """Batches as long as the set's longest sentence: TensorFlow takes the input shape from the
    first two batches, so a later, shorter batch failed (#17); on the reviews almost every batch of
    16 or more holds a 100-word review anyway: trimming each batch saved nothing."""

    def __init__(self, ids, labels, batch_size, shuffle=False, seed=0):
        super().__init__(len(ids), batch_size, shuffle, seed)
        self.ids, self.labels = trimmed(ids), np.asarray(labels, "float32")

    def __getitem__(self, index):
        rows = self.rows(index)
        return self.ids[rows], self.labels[rows]


def word2vec_matrix(token_lists, word_to_id, epochs, seed):
    """Skip-gram vectors (gensim) of the training split, the Embedding's start (row 0 = 0)."""
    from gensim.models import Word2Vec

    options = dict(vector_size=EMBEDDING_SIZE, min_count=1, sg=1, workers=2)
    words = Word2Vec(token_lists, epochs=epochs, seed=seed, **options)
    matrix = np.zeros((len(word_to_id) + 1, EMBEDDING_SIZE), "float32")
    for word, number in word_to_id.items():
        matrix[number] = words.wv[word] / max(np.linalg.norm(words.wv[word]), 1e-12) * 0.5
    return matrix


# ---- model and the article's measure -------------------------------------------------------------
LSTM_OPTIONS = dict(return_sequences=True, return_state=True, use_cudnn=False)


def build_model(vocabulary_size, embedding_dropout=0.0, input_dropout=0.0):
    """The article's classifier; returns (classifier, states): states maps ids → (h_1..h_T, h_n)."""
    ids = keras.Input((None,), dtype="int32", name="ids")
    words = vocabulary_size + 1  # 0: padding and OOV
    vectors = layers.Embedding(words, EMBEDDING_SIZE, mask_zero=True, name="embedding")(ids)
    if embedding_dropout:  # drops whole word-vector channels, keeps the mask
        vectors = layers.SpatialDropout1D(embedding_dropout)(vectors)
    # A masked (OOV) step repeats the previous state (zero_output_for_mask=False, as Keras 2's
    # K.rnn), so an OOV word gets exactly 0. cuDNN takes only right-padded masks without empty rows,
    # but 81% of the training rows mask an OOV word and 3 mask every word: never the cuDNN path.
    lstm = layers.LSTM(HIDDEN_SIZE, dropout=input_dropout, name="lstm", **LSTM_OPTIONS)
    sequence, final, _ = lstm(vectors)
    dense = layers.Dense(1, activation="sigmoid", name="probability")
    classifier = keras.Model(ids, dense(layers.Dropout(0.5)(final)), name="rnn_classifier")
    classifier.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return classifier, keras.Model(ids, [sequence, final], name="rnn_states")


def states_model(classifier):
    """Model(ids → [h_1..h_T, h_n]) sharing the classifier's layers; built once per classifier."""
    if not hasattr(classifier, "_saliency_states"):
        outputs = list(classifier.get_layer("lstm").output[:2])
        classifier._saliency_states = keras.Model(classifier.input, outputs)
    return classifier._saliency_states


def importances_from_states(sequence, final):
    """(‖h_n − h_i‖ − ‖h_n − h_{i+1}‖)/‖h_n‖ for every step, h_0 = 0: (B,T,H), (B,H) → (B,T)."""
    sequence, final = np.asarray(sequence, np.float64), np.asarray(final, np.float64)
    states = np.concatenate([np.zeros_like(sequence[:, :1]), sequence], axis=1)
    norm = np.maximum(np.linalg.norm(final, axis=-1, keepdims=True), 1e-12)
    distance = np.linalg.norm(states - final[:, None, :], axis=-1) / norm
    return distance[:, :-1] - distance[:, 1:]


def hidden_state_scores(classifier, ids, batch_size=1024):
    """The article's measure for id rows: one forward pass returns every hidden state."""
    model, scores = states_model(classifier), np.zeros(ids.shape, np.float64)
    for rows in length_batches(ids, batch_size):
        chunk = trimmed(ids[rows])
        scores[rows, : chunk.shape[1]] = importances_from_states(*model.predict_on_batch(chunk))
    return scores


def ranking(words, scores):
    """The article's output: [(position, word, score)] by descending score (ties in word order)."""
    order = sorted(range(len(words)), key=lambda i: (-scores[i], i))
    return [(i, words[i], round(float(scores[i]), 4)) for i in order]


def length_batches(ids, batch_size):
    """Row indices in batches of at most batch_size whose sentences end in the same LENGTH_BUCKET:
    one long sentence no longer pads a whole batch to 100 steps (8.4× → 23.8× over occlusion)."""
    ends = np.where(ids.any(axis=1), ids.shape[1] - np.argmax(ids[:, ::-1] != 0, axis=1), 0)
    buckets = np.ceil(ends / LENGTH_BUCKET).astype(int)
    order = np.argsort(buckets, kind="stable")
    same = np.split(order, np.flatnonzero(np.diff(buckets[order])) + 1)
    return [part[k : k + batch_size] for part in same for k in range(0, len(part), batch_size)]


def predict(classifier, ids, batch_size=1024):
    """P(positive) for every row; batched by length, each batch trimmed to its own length."""
    probabilities = np.zeros(len(ids))
    for rows in length_batches(ids, batch_size):
        probabilities[rows] = np.asarray(classifier.predict_on_batch(trimmed(ids[rows]))).ravel()
    return probabilities


# ---- three attribution baselines (common/attribution.py) ----------------------------------------
def signed_probability(classifier, embedded, mask, sign):
    """The predicted class's probability (sign +1 positive, −1 negative, up to a constant)."""
    _, final, _ = classifier.get_layer("lstm")(embedded, mask=mask, training=False)
    probability = ops.squeeze(classifier.get_layer("probability")(final), -1)
    return probability * ops.cast(ops.convert_to_tensor(sign), probability.dtype)


def embedding_attributions(classifier, ids, steps=None, chunk=64):
    """Gradient × input (steps=None), or integrated gradients on the word vectors."""
    weights = np.asarray(classifier.get_layer("embedding").embeddings)
    sign = attribution.predicted_sign(predict(classifier, ids))
    chunks = [(rows, trimmed(ids[rows])) for rows in length_batches(ids, chunk)]
    function = partial(signed_probability, classifier)
    return attribution.embedding_attributions(function, weights, chunks, ids.shape, sign, steps)


METHODS = {
    "hidden state (article)": hidden_state_scores,
    "occlusion": lambda model, ids: attribution.occlusion_scores(partial(predict, model), ids),
    "gradient x input": embedding_attributions,
    "integrated gradients": partial(embedding_attributions, steps=IG_STEPS),
}


# ---- train and evaluate --------------------------------------------------------------------------
def prepare(args, out, rng):
    """Tokens, labels, the 8:1:1 split (training cut to --train-size at random), the vocabulary."""
    texts, labels, stats = read_labelled_texts(args.data)
    tokens = segment(texts, out / "segmented.json")
    training, validation, test = stratified_split(labels, (8, 1, 1), seed=args.seed)
    if min(len(training), len(validation), len(test)) == 0:
        raise ValueError(f"{len(texts)} texts are too few to split 8:1:1 (train, validation, test)")
    if args.train_size:
        training = np.sort(rng.choice(training, min(len(training), args.train_size), replace=False))
    word_to_id = build_vocabulary([tokens[i] for i in training], args.min_count)
    if not word_to_id:
        empty = f"--min-count {args.min_count}: no word occurs that often in the training split"
        raise ValueError(f"{empty}, so the vocabulary would be empty")
    if args.batch_size > training.size:
        many = f"--batch-size {args.batch_size}: more than the {training.size} training texts"
        raise ValueError(many)
    vocabulary = {"min_count": args.min_count, "maxlen": MAXLEN, "word_to_id": word_to_id}
    recorded = out / "vocabulary.json"  # a resume's must be the same: has the --data file changed?
    if recorded.is_file() and runfolder.read_json(recorded) != vocabulary:
        raise ValueError(f"--out {out}: its vocabulary.json is not this data's; pass a new --out")
    sizes = [training.size, validation.size, test.size]
    print(f"{len(texts)} texts {stats}; split {sizes}; vocabulary {len(word_to_id)}", flush=True)
    return texts, tokens, labels, stats, vocabulary, (training, validation, test)


def train(args):
    run = runfolder.open_run(SCRIPT, args.out, runfolder.settings_of(args))
    if run.finished:
        return run.report_finished()
    out, rng = run.path, runs.seed_everything(args.seed)
    texts, tokens, labels, stats, vocabulary, parts = prepare(args, out, rng)
    (training, validation, test), word_to_id = parts, vocabulary["word_to_id"]
    ids = encode(tokens, word_to_id, MAXLEN)
    dropouts = (IMPROVED["embedding_dropout"], IMPROVED["input_dropout"]) if args.improved else ()
    classifier, _ = build_model(len(word_to_id), *dropouts)
    if args.improved:
        training_tokens, epochs = [tokens[i] for i in training], IMPROVED["word2vec_epochs"]
        vectors = word2vec_matrix(training_tokens, word_to_id, epochs, args.seed)
        classifier.get_layer("embedding").embeddings.assign(vectors)
    run.begin()  # the inputs are checked: from here on the folder holds the run
    runs.write_json(out / "vocabulary.json", vocabulary)
    runs.write_json(out / "segmented.json", {"texts": texts, "tokens": tokens})
    history, tracker = runfolder.fit(  # resumes; keeps the best validation accuracy of all epochs
        classifier,
        Batches(ids[training], labels[training], args.batch_size, shuffle=True, seed=args.seed),
        validation_data=Batches(ids[validation], labels[validation], 512),
        folder=out,
        epochs=args.epochs,
        monitor="val_accuracy",
        mode="max",
        patience=IMPROVED["patience"] if args.improved else None,
    )
    with runs.atomic_path(out / "model.keras") as temporary:
        classifier.save(temporary)
    history.pop("seconds")
    runs.plot_history(history, out / "learning_curves.png", "LSTM sentiment classifier")
    metrics = {
        "recipe": "improved" if args.improved else "article",
        "min_count": args.min_count,
        "vocabulary_size": len(word_to_id),
        "data": stats,
        "sizes": [len(part) for part in parts],
        "epochs": {"trained": len(history["loss"]), "kept": tracker.state["best"]["epoch"]},
        "article": ARTICLE,
        "environment": runs.environment(),
    }
    sealed = SealedTestSet(test)  # looked at once, in evaluate
    metrics.update(evaluate(args, classifier, ids, labels, tokens, (training, validation, sealed)))
    attribution.plot_deletion_curves(metrics["saliency"], out / "deletion_curves.png")
    metrics["examples"] = explain(classifier, word_to_id, list(ARTICLE_EXAMPLES))
    run.finish(metrics)  # the last file: a rerun reports this run instead of training again
    print(f"outputs in {out}")
    return metrics


def evaluate(args, classifier, ids, labels, tokens, parts):
    """Accuracies, the baseline, the deletion curves: the one look at the test split is here."""
    training, validation, sealed = parts
    test = sealed.take()

    def accuracy(rows):
        return float(np.mean((predict(classifier, ids[rows]) >= 0.5) == labels[rows]))

    metrics = {"validation_accuracy": accuracy(validation), "test_accuracy": accuracy(test)}
    print(f"accuracy {metrics} (the article: ≈90% validation on its own corpus)", flush=True)
    if args.baseline:
        metrics["tfidf_baseline"] = tfidf_baseline(tokens, labels, training, validation, test)
        print(f"TF-IDF uni+bigram logistic regression: {metrics['tfidf_baseline']}", flush=True)
    order = np.random.default_rng(args.seed).permutation(len(test))
    chosen = test[order[: args.saliency_sentences]]
    sentences = ids[chosen[(ids[chosen] != 0).any(axis=1)]]  # not all-OOV
    print(f"deletion curves on {len(sentences)} test sentences:", flush=True)
    methods = {name: partial(method, classifier) for name, method in METHODS.items()}
    metrics["saliency"] = {}
    if len(sentences):
        predictor = partial(predict, classifier)
        metrics["saliency"] = attribution.compare_methods(methods, predictor, sentences, args.seed)
    return {**metrics, "deletion_ks": [str(k) for k in attribution.DELETION_KS]}


# ---- explain and predict -------------------------------------------------------------------------
def load_run(path):
    """(classifier, word_to_id) of a trained run of this script (its folder or a file in it)."""
    folder = runfolder.find_run(SCRIPT, path, need=("model.keras", "vocabulary.json"))
    classifier = keras.saving.load_model(folder / "model.keras")
    classifier.get_layer("lstm").use_cudnn = False  # Keras does not save it: off again
    return classifier, runfolder.read_json(folder / "vocabulary.json")["word_to_id"]


def explain(classifier, word_to_id, sentences, rank=True):
    """[{sentence, probability, ranking}] for many sentences, one forward pass per batch."""
    tokens = [words[:MAXLEN] for words in segment(sentences)]
    ids = encode(tokens, word_to_id, MAXLEN)
    probabilities = predict(classifier, ids)
    results = [{"sentence": s, "probability": float(p)} for s, p in zip(sentences, probabilities)]
    if rank:
        for result, words, row in zip(results, tokens, hidden_state_scores(classifier, ids)):
            result["ranking"] = ranking(words, row[: len(words)])
    return results


def read_sentences(args):
    """explain / predict: sentences from the command line and --batch, through a trained run."""
    output = args.output or (args.batch and Path(args.batch).with_suffix(".jsonl"))
    for flag, path in (("--output", output), ("--html", args.html)):  # never overwrite the input
        if path and args.batch and Path(path).resolve() == Path(args.batch).resolve():
            default = "" if args.output or flag == "--html" else " (the default)"
            message = f"{flag} {path}{default} would overwrite the --batch input"
            raise ValueError(f"{message}; pass --output with another file name")
    classifier, word_to_id = load_run(args.model)
    lines = Path(args.batch).read_text(encoding="utf-8").splitlines() if args.batch else []
    sentences = list(args.sentences) + [line.strip() for line in lines if line.strip()]
    if not sentences:
        raise ValueError("give sentences as arguments or --batch FILE (one sentence a line)")
    results = explain(classifier, word_to_id, sentences, rank=args.command == "explain")
    for result in results[: len(args.sentences)]:
        print(f"{result['sentence']}  p(positive) = {result['probability']:.4f}")
        if "ranking" in result:
            print(result["ranking"])
    for path, text in (
        (output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)),
        (args.html, args.html and attribution.html_page(results)),
    ):
        if path:
            with runs.atomic_path(path) as temporary:
                temporary.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return results


# ---- command line --------------------------------------------------------------------------------
def reader_parser(verb, description):
    parser = argparse.ArgumentParser(prog=f"{SCRIPT}.py {verb}", description=description)
    parser.add_argument("--model", required=True, help="this script's run folder or a file in it")
    parser.add_argument("sentences", nargs="*", help="sentences to read")
    parser.add_argument("--batch", help="a file with one sentence a line")
    output = "JSON lines out (default with --batch FILE: FILE.jsonl; an input is never overwritten)"
    parser.add_argument("--output", help=output)
    if verb == "explain":
        parser.add_argument("--html", help="write the sentences shaded by word score to this file")
    parser.set_defaults(html=None)
    return parser


def parse_arguments(argv=None):
    """Bare (or `train`): train, test once, compare saliency methods; `explain`, `predict` a run."""
    main = argparse.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0])
    data_help = "a folder with the article's pos.xls, neg.xls (needs xlrd) or a text,label CSV/TSV"
    runs.add_standard_arguments(main, epochs=EPOCHS, batch_size=128, data_help=data_help)
    main.set_defaults(epochs=None)  # 5, --improved 8, --quick 2
    improved = "min count {min_count}, word2vec init, dropout {embedding_dropout} (word vectors), "
    improved += "{input_dropout} (LSTM inputs), up to {epochs} epochs, early stopping"
    main.add_argument("--improved", action="store_true", help=improved.format(**IMPROVED))
    main.add_argument("--baseline", action="store_true", help="also fit the TF-IDF LR baseline")
    min_count = "vocabulary: words seen this often in training (10, --improved 3)"
    main.add_argument("--min-count", type=runs.positive_int, help=min_count)
    sentences = "test sentences of the deletion curves (1000, --quick 200)"
    main.add_argument("--saliency-sentences", type=runs.positive_int, default=1000, help=sentences)
    size_help = "training texts kept, drawn at random (all, --quick 4000)"
    main.add_argument("--train-size", "--quick-train", type=runs.positive_int, help=size_help)
    verbs = {
        "explain": reader_parser("explain", "rank the words of sentences with a trained run"),
        "predict": reader_parser("predict", "p(positive) of sentences with a trained run"),
    }
    args = runs.parse_command(argv, main, verbs, lambda verb: QUICK if verb == "train" else {})
    if args.command == "train":  # what --improved sets where no flag says otherwise
        recipe = IMPROVED if args.improved else {"epochs": EPOCHS, "min_count": MIN_COUNT}
        args.epochs = args.epochs or recipe["epochs"]
        args.min_count = args.min_count or recipe["min_count"]
    return args


def main(argv=None):
    args = parse_arguments(argv)
    try:
        return train(args) if args.command == "train" else read_sentences(args)
    except (ValueError, OSError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    runs.command_line(main)
