"""Word vectors on disk and their evaluation, whoever trained them.

- `load_run` (vocab.tsv of word<TAB>count + vectors.npy, checked to match), `export_word2vec` (the
  text format gensim's KeyedVectors.load_word2vec_format reads).
- `read_analogy_file`, `evaluate_analogies`: Google / CA8 format, 3CosAdd with the inputs excluded,
  per section; questions with an out-of-vocabulary word are counted apart.
- `sentiment_accuracies`: sentence vectors (e.g. sums of word vectors) → logistic regression and
  Dense(64)-Dense(1), the test of "更别致的词向量模型": 8:1:1 split, selection on validation, test once.
"""

from pathlib import Path

import numpy as np

from common import runs
from common.split import SealedTestSet, stratified_split


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


def export_word2vec(path, words, vectors):
    """word2vec text format: a 'V dim' header, then 'word v1 … vdim' per line (gensim reads it)."""
    with runs.atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors):
            handle.write(word + " " + " ".join(f"{value:.6f}" for value in row) + "\n")


def unit_rows(vectors):
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


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
