"""common/chinese_text.py: corpus files, jieba segmentation, labelled texts, the all-Chinese corpus."""

import numpy as np
import pytest

from common import chinese_text


def test_undecodable_lines_are_counted(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("a b\n".encode() + b"\xff\xfe c\n" + "c d\n".encode())
    stats = {}
    assert list(chinese_text.read_token_lines([path], stats)) == [["a", "b"], ["c", "d"]]
    assert stats["undecodable_lines"] == 1


def test_text_files_take_a_file_or_the_files_of_a_folder(tmp_path):
    (tmp_path / "b.txt").write_text("x\n")
    (tmp_path / "a.txt").write_text("y\n")
    (tmp_path / ".hidden").write_text("z\n")
    assert [p.name for p in chinese_text.text_files(tmp_path)] == ["a.txt", "b.txt"]
    assert chinese_text.text_files(tmp_path / "a.txt") == [tmp_path / "a.txt"]
    with pytest.raises(ValueError, match="no such file or folder"):
        chinese_text.text_files(tmp_path / "missing")


def test_segmentation_is_jieba_without_hmm_and_blanks():
    import jieba

    text = "江泽民主席在北京会见了美国总统克林顿 。"
    assert chinese_text.segment(text) == [w for w in jieba.lcut(text, HMM=False) if w.strip()]
    assert chinese_text.tokenize("已经 分好 的 词") == ["已经", "分好", "的", "词"]


def test_segment_files_writes_one_document_a_line_and_reuses_the_cache(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_bytes("今天天气很好\n\n".encode() + b"\xff\n" + "我们去公园\n".encode())
    stats, cache = {}, tmp_path / "segmented.txt"
    assert chinese_text.segment_files([raw], cache, stats) == [cache]
    lines = cache.read_text(encoding="utf-8").splitlines()
    assert (
        len(lines) == 2
        and lines[0].replace(" ", "") == "今天天气很好"
        and stats["undecodable_lines"] == 1
    )
    cache.write_text("kept\n", encoding="utf-8")
    chinese_text.segment_files([raw], cache, stats)
    assert cache.read_text(encoding="utf-8") == "kept\n"


def test_labelled_csv_is_de_duplicated_and_conflicts_dropped(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(
        '\ufefftext,label\n很好,1\n 很好 ,1\n太差,0\n一般,1\n一般,0\n\n"好,很好",1\n',
        encoding="utf-8",
    )
    texts, labels, stats = chinese_text.read_labelled_texts(path)
    assert (
        texts == sorted(["很好", "太差", "好,很好"]) and stats["lines"] == 6 and stats["kept"] == 3
    )
    assert dict(zip(texts, labels.tolist())) == {"很好": 1, "太差": 0, "好,很好": 1}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the first line must name the columns text and label"),
        (b"text,score\nx,1\n", "the first line must name the columns text and label"),
        (b"label,text\n1,x\n0\nx,y\n", r"2 rows without a label 0 or 1 \(rows \[3, 4\]\)"),
        (b"text,label\n\xff,1\n", r"not a readable UTF-8 CSV \(UnicodeDecodeError\)"),
        (b"text,label\na,1\nb,1\n", "needs texts of both labels"),
    ],
)
def test_bad_labelled_csv_is_one_line(tmp_path, content, message):
    path = tmp_path / "reviews.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        chinese_text.read_labelled_texts(path)


def test_excel_pair_needs_xlrd_or_a_readable_file(tmp_path):
    for name in ("pos.xls", "neg.xls"):
        (tmp_path / name).write_bytes(b"not a spreadsheet")
    with pytest.raises(ValueError, match="needs the xlrd package|pos.xls: cannot read it as .xls"):
        chinese_text.read_labelled_texts(tmp_path)
    with pytest.raises(ValueError, match="expected a text,label CSV or a folder with pos.xls"):
        chinese_text.read_labelled_texts(tmp_path / "missing")


def test_default_labelled_texts_are_snownlps_reviews():
    texts, labels, stats = chinese_text.read_labelled_texts()
    assert len(texts) == len(labels) == stats["kept"] == 17363 and set(labels.tolist()) == {0, 1}


def test_cft_documents_write_the_answer_back(tmp_path):
    path = tmp_path / "cft.txt"
    path.write_text(
        "1 ||| 小 猫 很 可爱 。\n2 ||| 它 有 XXXXX 。 ||| 尾巴\n1 ||| 云 ||| x\n", encoding="utf-8"
    )
    assert chinese_text.cft_documents(path) == ["小猫很可爱。它有尾巴。", "云"]


def test_all_chinese_documents_join_the_four_sources(tmp_path, monkeypatch):
    (tmp_path / "cmrc2019").mkdir()
    (tmp_path / "hfl-cft").mkdir()
    (tmp_path / "cmrc2019" / "passages.tsv").write_text("TRIAL_1\t小明去上学。\n", encoding="utf-8")
    (tmp_path / "hfl-cft" / "cft.test.auto").write_text(
        "1 ||| 小 猫 。\n2 ||| XXXXX 好 ||| 猫\n", encoding="utf-8"
    )
    monkeypatch.setattr(chinese_text, "load_peoples_daily", lambda: [["人民", "日报"]])
    monkeypatch.setattr(chinese_text, "load_reviews", lambda: (["很好用"], np.array([1]), {}))
    documents = list(chinese_text.all_chinese_documents(tmp_path))
    assert documents[0] == ["人民", "日报"] and len(documents) == 4
    assert ["".join(d) for d in documents[1:]] == ["小明去上学。", "小猫。猫好", "很好用"]
    with pytest.raises(ValueError, match="passages.tsv: not found"):
        list(chinese_text.all_chinese_documents(tmp_path / "missing"))


def test_vocabulary_keeps_words_seen_min_count_times_most_frequent_first():
    tokens = [["好"] * 10 + ["差"] * 9 + ["快"] * 12]
    assert chinese_text.build_vocabulary(tokens, min_count=10) == {"快": 1, "好": 2}
    assert chinese_text.build_vocabulary(tokens, first_id=2, most=2) == {"快": 2, "好": 3}
    assert chinese_text.build_vocabulary([["b", "a"]]) == {"a": 1, "b": 2}  # ties by word


def test_encode_truncates_pads_and_maps_oov():
    ids = chinese_text.encode([["快", "新词", "好"], ["好"] * 150], {"快": 1, "好": 2}, 100)
    assert ids.shape == (2, 100) and ids.dtype == np.int32
    assert ids[0, :4].tolist() == [1, 0, 2, 0] and not ids[0, 3:].any()
    assert (ids[1] == 2).all()
    assert chinese_text.encode([["新词", "好"]], {"好": 2}, 3, oov=1).tolist() == [[1, 2, 0]]


def test_labelled_csv_errors_name_the_files_line_numbers(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text("text,label\n很好,1\n\n很差,0\n很好,1\n", encoding="utf-8")
    texts, labels, _ = chinese_text.read_labelled_texts(good)
    assert texts == ["很好", "很差"] and labels.tolist() == [1, 0]  # de-duplicated, sorted
    assert "skipped 1 empty lines (lines [3])" in capsys.readouterr().err
    bad_label = tmp_path / "bad.csv"
    bad_label.write_text("text,label\n很好,1\n\n很差,2\n一般,pos\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"2 rows without a label 0 or 1 \(rows \[4, 5\]\)"):
        chinese_text.read_labelled_texts(bad_label)
    bad_encoding = tmp_path / "bad.tsv"  # tab-separated by its suffix
    bad_encoding.write_bytes("text\tlabel\n好\t1\n".encode() + "坏\t0\n".encode("gbk"))
    with pytest.raises(ValueError, match=r"1 lines are not UTF-8 \(lines \[3\]\)"):
        chinese_text.read_labelled_texts(bad_encoding)
    tsv = tmp_path / "good.tab"
    tsv.write_text("label\ttext\n1\t好，很好\n0\t差\n", encoding="utf-8")
    assert chinese_text.read_labelled_texts(tsv)[0] == ["好，很好", "差"]


def test_tfidf_baseline_picks_c_on_validation_and_scores_test():
    rng = np.random.default_rng(0)
    filler = ["的", "了", "是", "我", "这个", "东西"]
    texts = [[word, *rng.choice(filler, 3)] for word in ["好", "差"] * 30]
    labels = np.array([1, 0] * 30)
    result = chinese_text.tfidf_baseline(texts, labels, range(40), range(40, 50), range(50, 60))
    assert result["C"] in (1.0, 4.0, 16.0)
    assert result["validation_accuracy"] == result["test_accuracy"] == 1.0
