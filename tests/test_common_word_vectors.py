"""common/word_vectors.py: co-occurrence counting, the files of a run, the article's analyses
(norms, Pearson similarity, keywords, sentence similarity, analogies), analogy files and 3CosAdd,
the sentence-vector sentiment test, and the analysis verbs' flags."""

import json

import numpy as np
import pytest

from common import word_vectors


# ---- counting (GloVe's cooccur.c) ----------------------------------------------------------------
def counts_of(lines, window, min_count=1, **kwargs):
    documents = [line.split() for line in lines]
    words, _ = word_vectors.build_vocabulary(documents, min_count)
    matrix = word_vectors.count_cooccurrences(documents, words, window, **kwargs).toarray()
    index = {w: k for k, w in enumerate(words)}
    return (lambda a, b: matrix[index[a], index[b]]), matrix


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
    matrix = word_vectors.count_cooccurrences(documents, words, window=1).toarray()
    assert matrix[0, 1] == 2  # once from each line: the OOV token took no position


def test_count_matrix_is_symmetric_without_self_pairs():
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(list("abcdefg"), rng.integers(1, 30))) for _ in range(50)]
    _, matrix = counts_of(lines, window=4)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert np.all(np.diag(matrix) == 0)


def test_self_pairs_are_excluded_from_total_count():
    x, matrix = counts_of(["a a b"], window=2)
    assert x("a", "a") == 0 and matrix.sum() == 4  # (a,b) and (b,a) twice each; (a,a) skipped


def test_chunked_counting_equals_one_shot_counting():
    rng = np.random.default_rng(1)
    documents = [list(rng.choice(list("abcdefghij"), rng.integers(1, 40))) for _ in range(200)]
    words, _ = word_vectors.build_vocabulary(documents, 1)
    whole = word_vectors.count_cooccurrences(documents, words, 10, chunk_tokens=10**9)
    for chunk_tokens in (1, 37, 500):
        parts = word_vectors.count_cooccurrences(documents, words, 10, chunk_tokens=chunk_tokens)
        assert (parts != whole).nnz == 0


def test_vocabulary_is_sorted_by_frequency_with_min_count():
    words, counts = word_vectors.build_vocabulary([["b", "a", "b", "c"], ["b", "a"]], min_count=2)
    assert words == ["b", "a"] and counts.tolist() == [3, 2]


# ---- the article's analyses (part 五) -----------------------------------------------------------
def test_pearson_of_pmi_profiles_equals_cosine_after_cholesky():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(60, 5))
    context = 30
    transformed = word_vectors.pearson_transform(embeddings, context)
    centred = embeddings[:context] - embeddings[:context].mean(axis=0)
    factor = np.linalg.cholesky(centred.T @ centred)
    np.testing.assert_allclose(factor @ factor.T, centred.T @ centred, atol=1e-8)
    for a, b in ((0, 1), (7, 42), (59, 3)):
        pearson = np.corrcoef(embeddings[a] @ centred.T, embeddings[b] @ centred.T)[0, 1]
        cosine = (
            transformed[a]
            @ transformed[b]
            / np.linalg.norm(transformed[a])
            / np.linalg.norm(transformed[b])
        )
        assert cosine == pytest.approx(pearson, abs=1e-8)
    assert word_vectors.related(transformed, 7, topn=1)[0] == (7, pytest.approx(1.0))
    with pytest.raises(ValueError):
        word_vectors.pearson_transform(embeddings, 5)


def test_keywords_rank_by_inner_product_with_sentence_sum():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 4))
    word_to_id = {w: k for k, w in enumerate("abcdef")}
    tokens = ["a", "c", "OOV", "c", "e", "a", "a"]
    total = vectors[[0, 2, 2, 4, 0, 0]].sum(axis=0)
    ranked = word_vectors.keywords(tokens, vectors, word_to_id)
    unique = ["a", "c", "e"]
    expected = [unique[k] for k in np.argsort(-(vectors[[0, 2, 4]] @ total))]
    assert [w for w, _ in ranked] == expected
    np.testing.assert_array_equal(
        word_vectors.sentence_vector(["x", "y"], vectors, word_to_id), np.zeros(4)
    )
    assert word_vectors.keywords(["x"], vectors, word_to_id) == []


def test_sentence_similarity_is_symmetric_bounded_and_one_for_identical():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(8, 5))
    word_to_id = {w: k for k, w in enumerate("abcdefgh")}
    for _ in range(20):
        first, second = list(rng.choice(list("abcdefgh"), 4)), list(rng.choice(list("abcdefgh"), 3))
        value = word_vectors.sentence_similarity(first, second, vectors, word_to_id)
        assert value == pytest.approx(
            word_vectors.sentence_similarity(second, first, vectors, word_to_id)
        )
        assert -1 <= value <= 1
        assert word_vectors.sentence_similarity(first, first, vectors, word_to_id) == pytest.approx(
            1.0
        )
    assert word_vectors.sentence_similarity(["zz"], ["a"], vectors, word_to_id) == 0.0


def test_analogy_is_sorted_by_cosine_and_keeps_inputs():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 6))
    word_to_id = {f"w{k}": k for k in range(20)}
    vectors[3] = vectors[0] + vectors[1] - vectors[2]  # w3 is the exact answer
    ranked = word_vectors.analogy(vectors, word_to_id, "w0", "w1", "w2", topn=20)
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and ranked[0][0] == 3
    assert {0, 1, 2} <= {k for k, _ in ranked}
    excluded = word_vectors.analogy(
        vectors, word_to_id, "w0", "w1", "w2", topn=20, exclude_inputs=True
    )
    assert not {0, 1, 2} & {k for k, s in excluded if np.isfinite(s)}
    with pytest.raises(ValueError):
        word_vectors.analogy(vectors, word_to_id, "w0", "nope", "w2")


def test_exported_vectors_round_trip_through_gensim(tmp_path):
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    words, vectors = ["。", "中国", "经济", "a"], rng.normal(size=(4, 5)).astype(np.float32)
    word_vectors.export_word2vec(tmp_path / "vectors.txt", words, vectors)
    loaded = KeyedVectors.load_word2vec_format(str(tmp_path / "vectors.txt"))
    assert loaded.index_to_key == words
    np.testing.assert_allclose(loaded.vectors, vectors, atol=1e-6)


def test_norm_ranks_count_from_the_smallest_and_skip_absent_words():
    vectors = np.array([[3.0, 0], [0.1, 0], [0, 2.0], [1.0, 1.0]])
    tracked = {"period": "。", "comma": "，", "de": "的", "he": "和"}
    stats = word_vectors.norm_ranks(
        vectors, ["的", "。", "和", "x"], np.array([5, 40, 3, 2]), tracked
    )
    assert stats["rank_period"] == 0 and stats["rank_de"] == 3 and stats["rank_he"] == 2
    assert np.isnan(stats["rank_comma"]) and -1 <= stats["rho"] <= 1


def test_norm_report_lists_smallest_and_largest_norms_and_rho():
    vectors = np.array([[3.0, 0], [0.1, 0], [0, 2.0], [1.0, 1.0]])
    smallest, largest, rho = word_vectors.norm_report(
        list("abcd"), np.array([1, 8, 2, 4]), vectors, 2
    )
    assert smallest == ["b", "d"] and largest == ["a", "c"] and rho == pytest.approx(1.0)


def test_counts_and_vectors_round_trip_through_a_run_folder(tmp_path):
    import scipy.sparse

    words, counts = ["。", "中国", "a"], np.array([9, 4, 2])
    matrix = scipy.sparse.csr_matrix(np.array([[0, 2, 1], [2, 0, 0], [1, 0, 0]], dtype=np.int64))
    word_vectors.save_counts(tmp_path, words, counts, matrix, {"tokens": 15})
    loaded_words, loaded_counts, loaded, stats = word_vectors.load_counts(tmp_path)
    assert loaded_words == words and loaded_counts.tolist() == [9, 4, 2] and stats == {"tokens": 15}
    assert (loaded != matrix).nnz == 0
    assert json.loads((tmp_path / "counts.json").read_text()) == {"stats": {"tokens": 15}}
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    word_vectors.save_vectors(tmp_path, words, vectors)
    assert word_vectors.load_run(tmp_path)[0] == words
    np.testing.assert_array_equal(word_vectors.load_run(tmp_path)[2], vectors)
    assert (tmp_path / "vectors.txt").read_text(encoding="utf-8").startswith("3 2\n。 0.000000 1.0")


def test_analysis_verbs_take_model_and_the_former_run_flag():
    parsers = word_vectors.analysis_parsers("script.py")
    assert set(parsers) == set(word_vectors.ANALYSES)
    assert parsers["norms"].parse_args(["--model", "m"]).model == "m"
    assert parsers["related"].parse_args(["的", "--run", "m"]).model == "m"  # the former name
    assert (
        parsers["norms"].parse_args([]).topn == 50
        and parsers["analogy"].parse_args("a b c".split()).topn == 10
    )
    assert parsers["similar"].parse_args(["的"]).context_words == 10000
    assert parsers["sentiment"].parse_args([]).seed == 2017
    assert "--run" not in parsers["norms"].format_help()  # hidden


def test_analogy_file_parsing_and_oov_counting(tmp_path):
    path = tmp_path / "analogies.txt"
    path.write_text(": capitals\nA a B b\nB b A a\nA a Z z\n\n: other\nA a B b\n", encoding="utf-8")
    sections = word_vectors.read_analogy_file(path)
    assert list(sections) == ["capitals", "other"] and len(sections["capitals"]) == 3
    offset = np.array([0, 0, 0, 1.0])
    base = {"A": [1, 0, 0, 0], "B": [0, 1, 0, 0], "C": [0, 0, 1, 0]}
    words = ["A", "a", "B", "b", "C"]
    vectors = np.array(
        [base["A"], np.add(base["A"], offset), base["B"], np.add(base["B"], offset), base["C"]]
    )
    results = word_vectors.evaluate_analogies(
        sections, vectors, {w: k for k, w in enumerate(words)}
    )
    assert results["capitals"] == {"correct": 2, "asked": 2, "oov": 1, "accuracy": 1.0}
    assert results["overall"]["asked"] == 3 and results["overall"]["oov"] == 1
    path.write_text(": s\nA a B\n", encoding="utf-8")
    with pytest.raises(ValueError):
        word_vectors.read_analogy_file(path)


def test_malformed_analogy_files_are_one_line_errors(tmp_path):
    path = tmp_path / "analogies.txt"
    for content, message in (
        (b": s\nA a B\n", "analogies.txt:2: expected 4 words, got 3"),
        (b": only a header\n", "holds no 'A B C D' lines"),
        (b"\xff A a B b\n", r"not a readable UTF-8 file \(UnicodeDecodeError\)"),
    ):
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            word_vectors.read_analogy_file(path)


def test_sentiment_accuracies_select_on_validation_and_look_at_test_once(monkeypatch):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    features = rng.normal(size=(400, 6)) + labels[:, None] * 1.5  # separable, with a little overlap
    looks = []
    original = word_vectors.SealedTestSet.take
    monkeypatch.setattr(
        word_vectors.SealedTestSet,
        "take",
        lambda self, allow_again=False: looks.append(1) or original(self, allow_again),
    )
    result = word_vectors.sentiment_accuracies(features, labels, seed=1)
    assert looks == [1] and result["split"] == [320, 40, 40] and result["texts"] == 400
    for key in ("lr_valid", "lr_test", "mlp_valid", "mlp_test"):
        assert 0.85 <= result[key] <= 1.0, key
    assert result["lr_C"] in (0.01, 0.1, 1.0, 10.0)
