"""Properties of simpler_wordvec.py: the counting rules, PMI and weights, the model and its Adagrad step, and the
article's analyses (norms, Pearson similarity, keywords, sentence similarity, analogies, gensim export)."""
import contextlib
import csv
import io
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import scipy.stats

import simpler_wordvec as wordvec
from common import runfolder, runs


def counts_of(lines, window, min_count=1, **kwargs):
    documents = [line.split() for line in lines]
    words, _ = wordvec.build_vocabulary(documents, min_count)
    matrix = wordvec.count_cooccurrences(documents, words, window, **kwargs).toarray()
    index = {w: k for k, w in enumerate(words)}
    return (lambda a, b: matrix[index[a], index[b]]), matrix


# ---- counting ----------------------------------------------------------------------------------------------------
def test_window_one_counts_neighbours_only():
    x, _ = counts_of(["a b c"], window=1)
    assert x("a", "b") == x("b", "a") == x("b", "c") == x("c", "b") == 1
    assert x("a", "c") == x("c", "a") == 0


def test_window_two_reaches_second_neighbour():
    x, _ = counts_of(["a b c"], window=2)
    assert x("a", "c") == x("c", "a") == 1


def test_window_never_crosses_lines():
    x, _ = counts_of(["a b", "c d"], window=5)
    assert x("b", "c") == 0 and x("a", "d") == 0 and x("a", "b") == 1


def test_oov_tokens_are_dropped_before_windowing():
    documents = [["a", "OOV", "b"], ["a", "b"]]
    words = ["a", "b"]  # OOV is below min-count
    matrix = wordvec.count_cooccurrences(documents, words, window=1).toarray()
    assert matrix[0, 1] == 2  # once from each line: the OOV token took no position


def test_count_matrix_is_symmetric_and_has_no_self_pairs():
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(list("abcdefg"), rng.integers(1, 30))) for _ in range(50)]
    _, matrix = counts_of(lines, window=4)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert np.all(np.diag(matrix) == 0)
    i, j, targets, weights = wordvec.training_records(wordvec.scipy.sparse.csr_matrix(matrix), np.ones(7))
    assert np.all(i != j) and len(i) == np.count_nonzero(matrix)


def test_self_pairs_are_excluded_from_total_count():
    x, matrix = counts_of(["a a b"], window=2)
    assert x("a", "a") == 0 and matrix.sum() == 4  # (a,b) twice and (b,a) twice; the (a,a) pair is skipped


def test_chunked_counting_equals_one_shot_counting():
    rng = np.random.default_rng(1)
    documents = [list(rng.choice(list("abcdefghij"), rng.integers(1, 40))) for _ in range(200)]
    words, _ = wordvec.build_vocabulary(documents, 1)
    whole = wordvec.count_cooccurrences(documents, words, 10, chunk_tokens=10**9)
    for chunk_tokens in (1, 37, 500):
        parts = wordvec.count_cooccurrences(documents, words, 10, chunk_tokens=chunk_tokens)
        assert (parts != whole).nnz == 0


def test_vocabulary_is_sorted_by_frequency_with_min_count():
    words, counts = wordvec.build_vocabulary([["b", "a", "b", "c"], ["b", "a"]], min_count=2)
    assert words == ["b", "a"] and counts.tolist() == [3, 2]


# ---- PMI and weights ---------------------------------------------------------------------------------------------
def test_pmi_target_is_ln_12_for_the_spec_example():
    value = wordvec.pmi_targets(6.0, 100.0, 10.0, 20.0, 200.0)
    assert value == pytest.approx(2.484907, abs=1e-6)
    assert value == pytest.approx(math.log((6 / 100) / ((10 / 200) * (20 / 200))), abs=1e-12)


def test_weights_follow_glove_with_and_without_truncation():
    for truncate in (False, True):
        assert wordvec.pair_weights([10.0], truncate)[0] == pytest.approx(0.177828, abs=1e-6)
        assert wordvec.pair_weights([100.0], truncate)[0] == pytest.approx(1.0)
    assert wordvec.pair_weights([400.0], truncate=True)[0] == pytest.approx(1.0)
    assert wordvec.pair_weights([400.0], truncate=False)[0] == pytest.approx(2.828427, abs=1e-6)


# ---- model -------------------------------------------------------------------------------------------------------
@pytest.mark.backend
def test_score_is_symmetric_with_one_shared_table():
    model = wordvec.build_model(10, dimension=4)
    i, j = np.array([1, 2, 7], np.int32), np.array([3, 2, 0], np.int32)
    np.testing.assert_allclose(model.predict([i, j], verbose=0), model.predict([j, i], verbose=0), rtol=1e-6)
    assert len(model.trainable_weights) == 1
    assert np.all(np.abs(wordvec.embedding_matrix(model)) <= 0.5 / 4)


@pytest.mark.backend
def test_loss_is_zero_when_inner_product_equals_pmi():
    model = wordvec.build_model(5, dimension=3)
    i, j = np.array([0, 1, 3], np.int32), np.array([2, 4, 1], np.int32)
    dots = model.predict([i, j], verbose=0)
    loss = wordvec.HalfSquaredError()(dots.reshape(-1), dots, sample_weight=np.array([0.5, 1.0, 3.0]))
    assert float(keras.ops.convert_to_numpy(loss)) == pytest.approx(0.0, abs=1e-12)
    loss = wordvec.HalfSquaredError()(dots.reshape(-1) + 1.0, dots, sample_weight=np.array([0.5, 1.0, 3.0]))
    assert float(keras.ops.convert_to_numpy(loss)) == pytest.approx(0.5 * 4.5, rel=1e-5)  # summed, not averaged


@pytest.mark.backend
def test_first_adagrad_step_matches_glove_c():
    model = wordvec.compile_model(wordvec.build_model(4, dimension=3))
    before = wordvec.embedding_matrix(model).astype(np.float64)
    target, weight = 2.0, 0.7
    model.train_on_batch([np.array([1], np.int32), np.array([2], np.int32)], np.array([target], np.float32),
                         sample_weight=np.array([weight], np.float32))
    after = wordvec.embedding_matrix(model).astype(np.float64)
    residual = weight * (before[1] @ before[2] - target)
    for row, other in ((1, 2), (2, 1)):
        gradient = residual * before[other]
        np.testing.assert_allclose(after[row], before[row] - 0.1 * gradient / np.sqrt(1 + gradient**2 + 1e-8),
                                   rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(after[[0, 3]], before[[0, 3]])


@pytest.mark.backend
def test_fit_drives_weighted_error_near_zero_on_a_tiny_vocabulary():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    size = 6
    truth = rng.normal(size=(size, size)) * 0.8
    i, j = np.array([(a, b) for a in range(size) for b in range(size) if a != b], np.int32).T
    targets = np.einsum("nd,nd->n", truth[i], truth[j]).astype(np.float32)
    weights = rng.uniform(0.2, 1.5, len(i)).astype(np.float32)
    model = wordvec.compile_model(wordvec.build_model(size, dimension=8))
    steps = 600  # full-batch steps, tiled into one epoch (per-epoch overhead dominates such tiny steps)
    model.fit([np.tile(i, steps), np.tile(j, steps)], np.tile(targets, steps), sample_weight=np.tile(weights, steps),
              batch_size=len(i), epochs=1, shuffle=False, verbose=0)
    vectors = wordvec.embedding_matrix(model)
    assert wordvec.weighted_error(vectors, i, j, targets, weights) < 1e-3
    np.testing.assert_allclose(np.einsum("nd,nd->n", vectors[i], vectors[j]), targets, atol=0.1)


def synthetic_topic_corpus(rng, topics=4, words_per_topic=8, lines=600, fillers=("的", "了", "，")):
    corpus = []
    for _ in range(lines):
        topic = rng.integers(topics)
        content = [f"t{topic}w{k}" for k in rng.integers(words_per_topic, size=15)]
        for filler in fillers:  # uniformly inserted, whatever the topic: PMI ≈ 0 with everything
            for _ in range(rng.integers(2, 6)):
                content.insert(rng.integers(len(content) + 1), filler)
        corpus.append(content)
    return corpus


@pytest.mark.backend
def test_frequent_filler_words_get_small_norms():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    corpus = synthetic_topic_corpus(rng)
    words, counts = wordvec.build_vocabulary(corpus, 1)
    records = wordvec.training_records(wordvec.count_cooccurrences(corpus, words, 5), counts)
    passes = 40  # tiled into one epoch: the same shuffled passes without the per-epoch overhead
    order = np.concatenate([rng.permutation(len(records[0])) for _ in range(passes)])
    model, _ = wordvec.train_vectors(*(r[order] for r in records), len(words), epochs=1, batch_size=256, verbose=0)
    norms = np.linalg.norm(wordvec.embedding_matrix(model), axis=1)
    is_filler = np.isin(words, ["的", "了", "，"])
    assert norms[is_filler].mean() < norms[~is_filler].mean()
    assert scipy.stats.spearmanr(norms, counts).statistic < 0


@pytest.mark.slow
def test_punctuation_has_among_the_smallest_norms_on_peoples_daily(tmp_path):
    run = wordvec.main(["train", "--out", str(tmp_path)])  # the article's 30 passes: tens of minutes on a CPU
    words, counts, vectors = wordvec.load_run(run)
    smallest, _, rho = wordvec.norm_report(words, counts, vectors, 50)
    assert "。" in smallest and "，" in smallest
    assert rho > 0


# ---- analyses ----------------------------------------------------------------------------------------------------
def test_pearson_of_pmi_profiles_equals_cosine_after_cholesky():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(60, 5))
    context = 30
    transformed = wordvec.pearson_transform(embeddings, context)
    centred = embeddings[:context] - embeddings[:context].mean(axis=0)
    factor = np.linalg.cholesky(centred.T @ centred)
    np.testing.assert_allclose(factor @ factor.T, centred.T @ centred, atol=1e-8)
    for a, b in ((0, 1), (7, 42), (59, 3)):
        pearson = np.corrcoef(embeddings[a] @ centred.T, embeddings[b] @ centred.T)[0, 1]
        cosine = transformed[a] @ transformed[b] / np.linalg.norm(transformed[a]) / np.linalg.norm(transformed[b])
        assert cosine == pytest.approx(pearson, abs=1e-8)
    assert wordvec.related(transformed, 7, topn=1)[0] == (7, pytest.approx(1.0))
    with pytest.raises(ValueError):
        wordvec.pearson_transform(embeddings, 5)


def test_keywords_rank_by_inner_product_with_sentence_sum():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 4))
    word_to_id = {w: k for k, w in enumerate("abcdef")}
    tokens = ["a", "c", "OOV", "c", "e", "a", "a"]
    total = vectors[[0, 2, 2, 4, 0, 0]].sum(axis=0)
    ranked = wordvec.keywords(tokens, vectors, word_to_id)
    unique = ["a", "c", "e"]
    expected = [unique[k] for k in np.argsort(-(vectors[[0, 2, 4]] @ total))]
    assert [w for w, _ in ranked] == expected
    np.testing.assert_array_equal(wordvec.sentence_vector(["x", "y"], vectors, word_to_id), np.zeros(4))
    assert wordvec.keywords(["x"], vectors, word_to_id) == []


def test_sentence_similarity_is_symmetric_bounded_and_one_for_identical():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(8, 5))
    word_to_id = {w: k for k, w in enumerate("abcdefgh")}
    for _ in range(20):
        first, second = list(rng.choice(list("abcdefgh"), 4)), list(rng.choice(list("abcdefgh"), 3))
        value = wordvec.sentence_similarity(first, second, vectors, word_to_id)
        assert value == pytest.approx(wordvec.sentence_similarity(second, first, vectors, word_to_id))
        assert -1 <= value <= 1
        assert wordvec.sentence_similarity(first, first, vectors, word_to_id) == pytest.approx(1.0)
    assert wordvec.sentence_similarity(["zz"], ["a"], vectors, word_to_id) == 0.0


def test_analogy_is_sorted_by_cosine_and_keeps_inputs():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 6))
    word_to_id = {f"w{k}": k for k in range(20)}
    vectors[3] = vectors[0] + vectors[1] - vectors[2]  # w3 is the exact answer
    ranked = wordvec.analogy(vectors, word_to_id, "w0", "w1", "w2", topn=20)
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and ranked[0][0] == 3
    assert {0, 1, 2} <= {k for k, _ in ranked}
    excluded = wordvec.analogy(vectors, word_to_id, "w0", "w1", "w2", topn=20, exclude_inputs=True)
    assert not {0, 1, 2} & {k for k, s in excluded if np.isfinite(s)}
    with pytest.raises(ValueError):
        wordvec.analogy(vectors, word_to_id, "w0", "nope", "w2")


def test_analogy_file_parsing_and_oov_counting(tmp_path):
    path = tmp_path / "analogies.txt"
    path.write_text(": capitals\nA a B b\nB b A a\nA a Z z\n\n: other\nA a B b\n", encoding="utf-8")
    sections = wordvec.read_analogy_file(path)
    assert list(sections) == ["capitals", "other"] and len(sections["capitals"]) == 3
    offset = np.array([0, 0, 0, 1.0])
    base = {"A": [1, 0, 0, 0], "B": [0, 1, 0, 0], "C": [0, 0, 1, 0]}
    words = ["A", "a", "B", "b", "C"]
    vectors = np.array([base["A"], np.add(base["A"], offset), base["B"], np.add(base["B"], offset), base["C"]])
    results = wordvec.evaluate_analogies(sections, vectors, {w: k for k, w in enumerate(words)})
    assert results["capitals"] == {"correct": 2, "asked": 2, "oov": 1, "accuracy": 1.0}
    assert results["overall"]["asked"] == 3 and results["overall"]["oov"] == 1
    path.write_text(": s\nA a B\n", encoding="utf-8")
    with pytest.raises(ValueError):
        wordvec.read_analogy_file(path)


def test_exported_vectors_round_trip_through_gensim(tmp_path):
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    words, vectors = ["。", "中国", "经济", "a"], rng.normal(size=(4, 5)).astype(np.float32)
    wordvec.export_word2vec(tmp_path / "vectors.txt", words, vectors)
    loaded = KeyedVectors.load_word2vec_format(str(tmp_path / "vectors.txt"))
    assert loaded.index_to_key == words
    np.testing.assert_allclose(loaded.vectors, vectors, atol=1e-6)


def test_undecodable_lines_are_counted(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("a b\n".encode() + b"\xff\xfe c\n" + "c d\n".encode())
    stats = {}
    assert list(wordvec.read_lines([path], stats)) == [["a", "b"], ["c", "d"]]
    assert stats["undecodable_lines"] == 1


# ---- command line ------------------------------------------------------------------------------------------------
class StopAt:
    """A Ctrl-C at the start of pass `epoch` (0-based)."""

    def __new__(cls, epoch):
        class Stop(keras.callbacks.Callback):
            def on_epoch_begin(self, index, logs=None):
                if index == epoch:
                    raise KeyboardInterrupt

        return Stop()


def history_epochs(path):
    with open(path, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def snapshot(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).rglob("*")}


def write_corpus(path, lines):
    path.write_text("\n".join(" ".join(line) for line in lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small run, interrupted by Ctrl-C at the start of its second pass, then rerun to the end."""
    folder = tmp_path_factory.mktemp("wordvec")
    lines = synthetic_topic_corpus(np.random.default_rng(0), lines=200)
    corpus, out = write_corpus(folder / "corpus.txt", lines), folder / "run"
    argv = ["train", "--data", str(corpus), "--epochs", "2", "--batch-size", "512",
            "--dimension", "16", "--out", str(out)]
    fit, stderr, stdout = runfolder.fit, io.StringIO(), io.StringIO()

    def interrupted_fit(*args, callbacks=(), **kwargs):
        return fit(*args, callbacks=[*callbacks, StopAt(1)], **kwargs)

    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        patch.setattr(wordvec.runfolder, "fit", interrupted_fit)
        with pytest.raises(SystemExit) as raised:
            runs.command_line(lambda: wordvec.main(argv))
    interrupted = {"code": raised.value.code, "message": stderr.getvalue().strip(),
                   "history": history_epochs(out / "history.csv"), "files": sorted(snapshot(out))}
    with contextlib.redirect_stdout(stdout):
        run = wordvec.main(argv)
    return SimpleNamespace(argv=argv, run=run, out=out, corpus=corpus, interrupted=interrupted,
                           resumed=stdout.getvalue())


def test_main_trains_exports_and_analyses_a_small_corpus(trained, capsys):
    out = trained.out
    assert trained.run == out
    for name in ("vectors.txt", "vectors.npy", "vocab.tsv", "model.keras", "metrics.json", "history.csv",
                 "cooccurrence.npz", "loss.png", "run.json"):
        assert (out / name).is_file(), name
    assert not (out / "backup").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["script"] == "simpler_wordvec"
    assert metrics["min_count"] == wordvec.SMALL_MIN_COUNT
    vectors = wordvec.embedding_matrix(keras.saving.load_model(out / "model.keras"))
    np.testing.assert_array_equal(vectors, np.load(out / "vectors.npy"))
    for command in (["norms", "--topn", "3"], ["analogy", "t0w1", "t1w2", "t0w2"], ["related", "的"],
                    ["similar", "t0w1", "--context-words", "30"], ["keywords", "t0w1 的 t0w2"],
                    ["sentsim", "t0w1 的", "t0w2 了"]):
        wordvec.main(command + ["--run", str(out)])
    assert "Spearman" in capsys.readouterr().out


def test_interrupted_train_resumes_without_repeating_a_pass(trained):
    assert trained.interrupted["code"] == 130
    assert trained.interrupted["message"] == "interrupted; rerun the same command to resume"
    assert trained.interrupted["history"] == [0]
    assert "metrics.json" not in trained.interrupted["files"]
    assert "reusing cached counts" in trained.resumed  # the counts were kept, not redone
    assert history_epochs(trained.out / "history.csv") == [0, 1]
    metrics = json.loads((trained.out / "metrics.json").read_text(encoding="utf-8"))
    with open(trained.out / "history.csv", newline="") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 2  # the pass before the interruption too
    assert metrics["loss_per_pass"] == pytest.approx(losses)


def test_finished_run_is_reported_and_not_trained_again(trained, capsys):
    before = snapshot(trained.out)
    assert wordvec.main(trained.argv) == trained.out
    assert "holds a finished run of simpler_wordvec" in capsys.readouterr().out
    assert snapshot(trained.out) == before


def test_changed_settings_are_one_line_and_touch_nothing(trained, refuses):
    argv = [*trained.argv[:-2], "--window", "5", *trained.argv[-2:]]
    refuses(lambda: wordvec.main(argv), match=r"other settings: --window 10 \(now 5\)",
            untouched=trained.out)


BAD_CORPORA = {"empty corpus": b"", "undecodable corpus": b"\xff\xfe\n\xff\n\xfe\n",
               "corpus below the window": b"a b c\n", "one word a line": b"a\nb\n" * 10}
BAD_ANALOGIES = {"malformed analogy line": b": s\nt0w1 t0w2 t1w1\n",
                 "empty analogy file": b"", "undecodable analogy file": b"\xff t0w1\n"}


def damage(case, run):
    """What is done to a copy of the trained run for `case`."""
    vocabulary = run / "vocab.tsv"
    if case == "another script's run":
        (run / "run.json").write_text(json.dumps({"script": "cloze_lm", "settings": {}}))
    elif case == "zero-byte vectors.npy":
        (run / "vectors.npy").write_bytes(b"")
    elif case == "vocabulary shorter than the vectors":
        lines = vocabulary.read_text(encoding="utf-8").splitlines(True)
        vocabulary.write_text("".join(lines[:-1]), encoding="utf-8")
    elif case == "vocab.tsv without counts":
        vocabulary.write_text("的\n了\n", encoding="utf-8")
    elif case in ("unfinished run", "not a run folder"):
        (run / "metrics.json").unlink()
        if case == "not a run folder":
            (run / "run.json").unlink()


DAMAGE = ("another script's run", "zero-byte vectors.npy", "vocabulary shorter than the vectors",
          "vocab.tsv without counts", "unfinished run", "not a run folder")


def bad_input(case, tmp_path, trained):
    """The command line of one bad input; it must leave tmp_path as it was."""
    run, corpus, analogy = tmp_path / "run", tmp_path / "corpus.txt", tmp_path / "analogy.txt"
    shutil.copytree(trained.out, run)
    corpus.write_bytes(BAD_CORPORA.get(case, trained.corpus.read_bytes()))
    analogy.write_bytes(BAD_ANALOGIES.get(case, b""))
    (tmp_path / "empty").mkdir()
    damage(case, run)
    train = ["train", "--data", str(corpus), "--out", str(tmp_path / "new")]
    norms, evaluate = ["norms", "--run", str(run)], ["evaluate", "--run", str(run), "--analogy"]
    return {
        "topn negative": [*norms, "--topn", "-3"], "topn zero": ["related", "的", "--topn", "0"],
        "context words negative": ["similar", "的", "--context-words", "-1", "--run", str(run)],
        "word not in the vocabulary": ["related", "zzz", "--run", str(run)],
        **{f"{flag} zero": [*train, f"--{flag}", "0"]
           for flag in ("min-count", "window", "dimension", "memory", "epochs", "paragraphs")},
        "out under a file": [*train[:-1], str(corpus / "run")],
        "missing analogy file": [*evaluate, str(tmp_path / "no.txt")],
        **{case: [*evaluate, str(analogy)] for case in BAD_ANALOGIES},
        **{case: norms for case in DAMAGE},
        "missing run": ["norms", "--run", str(tmp_path / "no-run")],
        "a text file as the run": ["norms", "--run", str(corpus)],
        "missing corpus": [*train[:2], str(tmp_path / "no.txt"), *train[3:]],
        "empty corpus folder": [*train[:2], str(tmp_path / "empty"), *train[3:]],
        **{case: [*train, "--min-count", "1"] for case in BAD_CORPORA},
        "min-count above every count": [*train, "--min-count", "100000"],
    }[case]


@pytest.mark.parametrize("case, message", [
    ("topn negative", "argument --topn: -3 is not a positive integer"),
    ("topn zero", "argument --topn: 0 is not a positive integer"),
    ("context words negative", "argument --context-words: -1 is not"),
    ("word not in the vocabulary", "'zzz' is not in the vocabulary"),
    *[(f"{flag} zero", f"argument --{flag}: 0 is not a positive integer")
      for flag in ("min-count", "window", "dimension", "memory", "epochs", "paragraphs")],
    ("out under a file", r"corpus.txt is a file, not a folder"),
    ("missing analogy file", r"no.txt: not a readable UTF-8 file \(FileNotFoundError\)"),
    ("malformed analogy line", r"analogy.txt:2: expected 4 words, got 3"),
    ("empty analogy file", r"analogy.txt: holds no 'A B C D' lines"),
    ("undecodable analogy file", r"analogy.txt: not a readable UTF-8 file \(UnicodeDecodeError\)"),
    ("another script's run", "a run of cloze_lm, not of simpler_wordvec"),
    ("zero-byte vectors.npy", r"vectors.npy: not a NumPy array"),
    ("vocabulary shorter than the vectors", r"holds float32 \(\d+, 16\), not one row for each"),
    ("vocab.tsv without counts", r"vocab.tsv: not word<TAB>count lines \(ValueError\)"),
    ("unfinished run", "the run has no metrics.json yet"),
    ("not a run folder", "not a run folder of simpler_wordvec"),
    ("missing run", "no such file or folder"),
    ("a text file as the run", "not a run folder"),
    ("missing corpus", "no.txt: no such file or folder"),
    ("empty corpus folder", "folder holds no files"),
    ("empty corpus", r"holds 0 words, not more than --window 10"),
    ("undecodable corpus", r"holds 0 words \(3 lines not UTF-8\)"),
    ("corpus below the window", r"holds 3 words, not more than --window 10: too few"),
    ("one word a line", "no two of the 2 words occur within --window 10"),
    ("min-count above every count", r"0 word\(s\) occur --min-count 100000 times"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, trained, refuses, case, message):
    argv = bad_input(case, tmp_path, trained)
    refuses(lambda: wordvec.main(argv), match=message, untouched=tmp_path)


@pytest.mark.recipe
@pytest.mark.backend
def test_default_recipe_trains_and_writes_on_a_tiny_corpus(tmp_path):
    """The article's model (128-d vectors and biases, window 5, default batch), one pass over a small corpus."""
    corpus = synthetic_topic_corpus(np.random.default_rng(1), lines=200)
    (tmp_path / "corpus.txt").write_text("\n".join(" ".join(line) for line in corpus) + "\n", encoding="utf-8")
    run = wordvec.main(["train", "--data", str(tmp_path / "corpus.txt"), "--epochs", "1", "--out",
                        str(tmp_path / "run")])
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert np.load(run / "vectors.npy").shape[1] == wordvec.DIMENSION == 128 and len(metrics["loss_per_pass"]) == 1
    keras.saving.load_model(run / "model.keras")
