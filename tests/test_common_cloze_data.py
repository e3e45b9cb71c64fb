"""Properties of common/cloze_data.py: the CMRC 2017, CFT and CMRC 2019 readers, decontamination,
the encoded batches and the official metric (moved from tests/test_cloze_lm.py, issue #18)."""

import subprocess
import sys

import numpy as np
import pytest

from common import cloze_data

TOY = """1 ||| 小 猫 喜欢 鱼 。
2 ||| XXXXX 也 喜欢 鱼 。
3 ||| 小 狗 喜欢 骨头 。
<qid_0> ||| XXXXX 也 喜欢 鱼 。
1 ||| 兔子 爱 吃 萝卜 。
2 ||| 兔子 说 ： XXXXX
<qid_1> ||| 兔子 说 ： XXXXX
"""
TOY_ANSWERS = "<qid_0> ||| 小\n<qid_1> ||| 萝卜\n"
CFT = """1 ||| 小 猫 钓 鱼 。
2 ||| 小 猫 想 吃 XXXXX ||| 鱼
1 ||| 轻 - 重 ， 上升 - 下沉 。
2 ||| 上升 -XXXXX ||| 下沉
"""
# results/evaluate.py of ymcui/cmrc2017, ported to Python 3 (reload/setdefaultencoding removed), nothing else changed
OFFICIAL_EVALUATE = r"""
import sys
prediction_file = open(sys.argv[1], 'rb')
reference_file = open(sys.argv[2], 'rb')
reference_dict = dict()
reference_lines = reference_file.readlines()
total_count = len(reference_lines)
for line in reference_lines:
    line = line.decode('utf-8').strip()
    qid, answer = line.split(' ||| ')
    reference_dict[qid] = answer
right_count = 0
for line in prediction_file.readlines():
    line = line.decode('utf-8').strip()
    line_segs = line.split(' ||| ')
    if len(line_segs) == 1:
        qid = line_segs[0]
        answer = ''
    else:
        qid = line_segs[0]
        answer = line_segs[1]
    if answer == reference_dict[qid]:
        right_count += 1
accuracy = 100.0*right_count / total_count
print(accuracy)
"""


def test_parser_returns_left_right_pairs_without_query_or_blank():
    questions = cloze_data.parse_doc_query(TOY)
    assert [qid for qid, *_ in questions] == ["<qid_0>", "<qid_1>"]
    (_, left0, right0), (_, left1, right1) = questions
    assert left0 == "小 猫 喜欢 鱼 。".split()  # the query line is not part of the context
    assert right0 == "也 喜欢 鱼 。 小 狗 喜欢 骨头 。".split()
    assert all("XXXXX" not in side for _, left, right in questions for side in (left, right))
    assert right1 == [cloze_data.UNK_TOKEN]  # empty side


def test_answers_parse_from_qid_lines():
    assert cloze_data.parse_answers(TOY_ANSWERS) == {"<qid_0>": "小", "<qid_1>": "萝卜"}


def test_malformed_file_names_file_and_line():
    with pytest.raises(ValueError, match=r"toy.doc_query:2: expected 'N \|\|\| tokens'"):
        cloze_data.parse_doc_query("1 ||| a XXXXX b\nbroken line\n<qid_0> ||| q\n", "toy.doc_query")
    with pytest.raises(ValueError, match="exactly one XXXXX"):
        cloze_data.parse_doc_query("1 ||| a b\n<qid_0> ||| q\n", "toy.doc_query")


def test_shared_validation_files_parse_with_answer_in_every_context(shared_data):
    questions = cloze_data.read_official(
        shared_data / "cmrc2017" / "cloze.valid.doc_query",
        shared_data / "cmrc2017" / "cloze.valid.answer",
    )
    assert len(questions) == 1000
    assert all(answer in left + right for _, left, right, answer in questions)


def test_cft_parser_writes_the_answer_back():
    documents = cloze_data.parse_cft(CFT)
    assert len(documents) == 2
    (tokens, position), (glued, glued_position) = documents
    assert tokens[position] == "鱼" and "XXXXX" not in tokens
    assert glued[glued_position] == "下沉" and glued[glued_position - 1] == "-"


def test_shared_cft_file_parses(shared_data):
    documents = cloze_data.parse_cft(
        (shared_data / "hfl-cft" / "cft.test.auto").read_text(encoding="utf-8")
    )
    assert len(documents) == 2706


def test_cmrc2019_parser_drops_blank_markers_and_rejects_malformed_lines():
    documents = cloze_data.parse_cmrc2019(
        "QUALIFY_0\t小猫说： … ，它很饿。 … \n\nDEV_1\t小狗……跑了。\n"
    )
    assert documents == [
        ["小猫", "说", "：", "，", "它", "很", "饿", "。"],
        ["小狗", "…", "…", "跑", "了", "。"],
    ]
    with pytest.raises(ValueError, match=r"p.tsv:2: expected 'context_id<TAB>passage'"):
        cloze_data.parse_cmrc2019("A\t小猫。\nno tab here\n", "p.tsv")


@pytest.fixture(scope="module")
def shared_sources(shared_data):
    """CFT and CMRC 2019 documents, decontaminated against the 1,000 shared validation stories."""
    validation = cloze_data.load_validation(shared_data / "cmrc2017")
    stories = set().union(*map(cloze_data.story_ngrams, validation))  # the answers written back
    return cloze_data.training_documents(["cft", "cmrc2019"], "nouns", shared_data, stories)


def test_shared_cmrc2019_passages_become_documents_of_cft_size(shared_sources):
    documents, _, dropped = shared_sources["cmrc2019"]
    assert 2800 < len(documents) < 3300  # from 929 stories
    mean = {name: np.mean([len(d) for d in kept]) for name, (kept, *_) in shared_sources.items()}
    assert abs(mean["cmrc2019"] / mean["cft"] - 1) < 0.1  # 129.7 vs 131.9 tokens
    assert min(map(len, documents)) >= cloze_data.CMRC2019_TOKENS // 2
    assert dropped == 0  # the data README: its passages that overlap the validation were removed


def test_shared_cft_loses_the_documents_that_repeat_validation_stories(shared_sources):
    documents, _, dropped = shared_sources["cft"]
    assert 1 <= dropped <= 30  # 8 of 2,706 against the 1,000 shared validation stories
    assert len(documents) == 2706 - dropped


def test_training_file_holding_a_validation_story_is_cut_to_the_rest(tmp_path):
    story = [
        "小",
        "兔子",
        "在",
        "森林",
        "里",
        "采",
        "蘑菇",
        "，",
        "它",
        "采",
        "了",
        "一",
        "篮子",
        "蘑菇",
        "，",
        "高高兴兴",
        "地",
        "回家",
        "了",
        "。",
    ]
    (tmp_path / "hfl-cft").mkdir()
    (tmp_path / "cmrc2019").mkdir()
    copied = f"1 ||| 从前 ， {' '.join(story)}\n2 ||| 兔子 采 了 XXXXX ||| 蘑菇\n"
    (tmp_path / "hfl-cft" / "cft.test.auto").write_text(CFT + copied, encoding="utf-8")
    (tmp_path / "cmrc2019" / "passages.tsv").write_text(  # other punctuation, same characters
        "A\t小猫钓鱼，钓到了一条鱼。\nB\t那天，小兔子在森林里采蘑菇,它采了一篮子。\n",
        encoding="utf-8",
    )

    def sizes(stories):
        result = cloze_data.training_documents(["cft", "cmrc2019"], "nouns", tmp_path, stories)
        return {name: (len(documents), dropped) for name, (documents, _, dropped) in result.items()}

    assert sizes(cloze_data.chinese_ngrams(story)) == {"cft": (2, 1), "cmrc2019": (1, 1)}
    assert sizes(set()) == {"cft": (3, 0), "cmrc2019": (2, 0)}  # a clean file loses none
    result = cloze_data.training_documents(
        ["cft"], "nouns", tmp_path, cloze_data.chinese_ngrams(story)
    )
    kept, _, _ = result["cft"]  # the rest, unchanged
    assert kept == [[(word, "") for word in tokens] for tokens, _ in cloze_data.parse_cft(CFT)]


def test_target_is_uniform_over_answer_positions_and_zero_at_padding():
    target = cloze_data.make_target(np.array([5, 3, 0, 0]), np.array([7, 3, 9, 0]), 3)
    np.testing.assert_allclose(target, [0, 0.5, 0, 0, 0, 0.5, 0, 0])
    assert target.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cloze_data.make_target(
            np.array([5, 0]), np.array([7, 0]), 0
        )  # padding never counts as the answer


def test_training_batches_mark_non_candidates_but_never_the_answer():
    sample = {
        "qid": "q",
        "left": np.array([5, 3], np.int32),
        "right": np.array([7, 3], np.int32),
        "keys": np.array([5, 3, 7, 3], np.int32),
        "answer_key": 3,
        "never": np.array([5, 3], np.int32),
    }
    (left, right), target = cloze_data.ClozeBatches([sample, sample], 2, rng=None)[0]
    width = left.shape[1]
    row = np.concatenate([target[0, :2], target[0, width : width + 2]])
    np.testing.assert_allclose(
        row, [-1, 0.5, 0, 0.5]
    )  # 5 blocked, the answer 3 kept although listed, 7 a candidate
    assert (
        target[0][np.concatenate([left[0], right[0]]) == 0] == 0
    ).all()  # padding stays 0, not −1


def test_metric_equals_official_evaluate(tmp_path):
    reference = ["<qid_0> ||| 小", "<qid_1> ||| 萝卜", "<qid_2> ||| 鱼", "<qid_3> ||| 猫"]
    predictions = ["<qid_0> ||| 小", "<qid_1>", "<qid_2> ||| 鱼 "]  # a blank answer, a missing qid
    (tmp_path / "pred").write_text("\n".join(predictions) + "\n", encoding="utf-8")
    (tmp_path / "ref").write_text("\n".join(reference) + "\n", encoding="utf-8")
    (tmp_path / "evaluate.py").write_text(OFFICIAL_EVALUATE)
    official = subprocess.run(
        [sys.executable, tmp_path / "evaluate.py", tmp_path / "pred", tmp_path / "ref"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert cloze_data.official_accuracy(predictions, reference) == float(official) == 50.0


def test_bucketing_reduces_padding():
    rng = np.random.default_rng(0)
    samples = [
        {
            "left": np.ones(n, np.int32) * 2,
            "right": np.ones(m, np.int32) * 2,
            "keys": np.ones(n + m, np.int32) * 2,
            "answer_key": 2,
        }
        for n, m in rng.integers(1, 300, (800, 2))
    ]

    def padded_per_real(bucket):
        batches = cloze_data.ClozeBatches(samples, 16, rng=np.random.default_rng(1), bucket=bucket)
        shapes = [
            (left.size + right.size)
            for _, left, right, _ in (batches.arrays(i) for i in range(1, len(batches)))
        ]
        return sum(shapes) / sum(len(s["keys"]) for s in samples)

    assert padded_per_real(True) < 0.8 * padded_per_real(False)


def test_training_batches_split_evenly_across_devices():
    samples = [{"left": [1] * (k % 7 + 1), "right": [2]} for k in range(23)]
    batches = cloze_data.ClozeBatches(samples, 9, rng=np.random.default_rng(0), devices=3)
    assert sorted(len(batch) for batch in batches.batches) == [
        3,
        9,
        9,
    ]  # 9 + 9 + 5: the last drops 2 rows
    assert sorted(len(batch) for batch in cloze_data.ClozeBatches(samples, 9).batches) == [
        5,
        9,
        9,
    ]  # evaluation


def test_vocabulary_and_vectors_round_trip_and_are_kept_once_written(tmp_path):
    assert cloze_data.load_vocabulary(tmp_path) is None  # a new run: nothing to reuse
    vectors = np.arange(6, dtype="float32").reshape(2, 3)
    cloze_data.save_vocabulary(tmp_path, ["猫", "鱼"], vectors)
    assert (tmp_path / "vocabulary.txt").read_text(encoding="utf-8").split("\n") == [
        "<pad>",
        "<unk>",
        "猫",
        "鱼",
    ]  # line k is the word of id k
    words, loaded = cloze_data.load_vocabulary(tmp_path)
    assert words == ["猫", "鱼"] and np.array_equal(loaded, vectors)
    cloze_data.save_vocabulary(tmp_path, ["狗"], vectors[:1])  # a resumed run keeps its table
    assert cloze_data.load_vocabulary(tmp_path, vectors=False) == (["猫", "鱼"], None)
