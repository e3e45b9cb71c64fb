"""Properties of cloze_lm.py (spec section 3, "Testable properties / 3. Cloze")."""

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest

import cloze_lm
from common import cloze_data, runfolder, runs
from common.datasets import load_peoples_daily


@pytest.mark.parametrize(
    "sources, passages, message",
    [
        (
            "cmrc2019",
            "A\t小猫。\nB 小狗。\n",
            r".*passages.tsv:2: expected 'context_id<TAB>passage'$",
        ),
        ("cmrc2019", "", r"--sources cmrc2019: .*passages.tsv holds no documents$"),
        ("cft,cmrc,pd", "", r"--sources cft,cmrc,pd: choose from cft, cmrc2019, pd, none$"),
        ("cft", "", r".*cft.test.auto not found; pass --data DIR, or other --sources$"),
    ],
)
def test_bad_source_exits_with_one_line(tmp_path, sources, passages, message):
    (tmp_path / "cmrc2019").mkdir()
    (tmp_path / "cmrc2019" / "passages.tsv").write_text(passages, encoding="utf-8")
    valid = write_questions(tmp_path, "v", VALID_STORY)
    with pytest.raises(SystemExit, match=f"^error: {message}") as raised:
        cloze_lm.main(
            [
                "train",
                "--sources",
                sources,
                "--data",
                str(tmp_path),
                "--valid",
                valid,
                "--out",
                str(tmp_path / "run"),
            ]
        )
    assert "\n" not in str(raised.value)


@pytest.mark.backend
def test_candidate_cross_entropy_leaves_out_positions_marked_minus_one():
    logits = np.array([[1.0, 5.0, 1.0, 0.0]], "float32")
    target = np.array([[0.5, -1.0, 0.5, 0.0]], "float32")  # position 1 is not a candidate
    loss = float(np.asarray(cloze_lm.candidate_cross_entropy(target, logits))[0])
    assert loss == pytest.approx(
        np.log(2 * np.e + 1) - 1, abs=1e-5
    )  # softmax over positions 0, 2, 3 only
    plain = keras.losses.CategoricalCrossentropy(from_logits=True, reduction=None)
    full = np.array([[0.5, 0.0, 0.5, 0.0]], "float32")
    np.testing.assert_allclose(
        np.asarray(cloze_lm.candidate_cross_entropy(full, logits)),
        np.asarray(plain(full, logits)),
        atol=1e-5,
    )


def test_pointer_sum_prefers_summed_probability_over_argmax_position():
    assert cloze_lm.pointer_sum(np.array([5, 3, 7, 3]), np.array([0.4, 0.25, 0.1, 0.25]))[0] == 3


@pytest.mark.backend
def test_logits_shape_and_softmax_mass_on_padding():
    model = cloze_lm.build_model(50)
    left = np.array([[5, 3, 0, 0], [2, 2, 2, 2]])
    right = np.array([[7, 3, 9, 0], [4, 0, 0, 0]])
    logits = np.asarray(model.predict_on_batch((left, right)), "float64")
    assert logits.shape == (2, 8)
    probabilities = cloze_lm.masked_softmax(logits)
    padding = np.concatenate([left, right], axis=1) == cloze_lm.PAD
    assert probabilities[padding].sum() < 1e-6


@pytest.mark.backend
def test_one_bilstm_per_depth_reads_both_sides():
    model = cloze_lm.build_model(50, match="states")
    assert sorted(layer.name for layer in model.layers if "bilstm" in layer.name) == [
        "bilstm1",
        "bilstm2",
    ]
    sequence = np.array([[5, 3, 7, 1, 9], [2, 4, 0, 0, 0]])
    logits = np.asarray(model.predict_on_batch((sequence, sequence)))
    # identical sides give identical states only when the sides share the weights
    np.testing.assert_allclose(logits[:, :5], logits[:, 5:], rtol=1e-5, atol=1e-5)


@pytest.mark.backend
def test_trainable_parameters_are_657536_with_frozen_table_and_trainable_unk():
    model = cloze_lm.build_model(1000, vectors=np.ones((998, 128), "float32"))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 657_536
    embedding = model.get_layer("embedding")
    assert [w.name for w in embedding.non_trainable_weights] == ["table"]
    vectors = keras.ops.convert_to_numpy(embedding(np.array([[0, 1, 2]])))
    np.testing.assert_allclose(vectors[0, 0], 0)  # PAD
    np.testing.assert_allclose(
        vectors[0, 1], keras.ops.convert_to_numpy(embedding.unk)[0]
    )  # the trainable row
    np.testing.assert_allclose(vectors[0, 2], 1)  # word vectors from the table


@pytest.mark.backend
def test_train_vectors_makes_the_table_trainable_a_step_moves_only_rows_read_and_config_keeps_it():
    model = cloze_lm.build_model(40, vectors=np.ones((38, 128), "float32"), train_table=True)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 657_536 + 40 * 128
    embedding = model.get_layer("embedding")
    assert cloze_lm.UnkEmbedding.from_config(embedding.get_config()).train_table is True
    model.compile(keras.optimizers.Adam(0.01), loss=cloze_lm.candidate_cross_entropy)
    ids = np.array([[2, 3, 4, 5]], "int32")
    model.train_on_batch((ids, ids), np.array([[1.0, 0, 0, 0, 0, 0, 0, 0]], "float32"))
    table = keras.ops.convert_to_numpy(model.get_layer("embedding").table)
    assert not np.allclose(table[2:6], 1) and np.allclose(table[6:], 1)  # only the rows read
    args = cloze_lm.parse_arguments(["--train-vectors", "--learning-rate", "3e-4"])
    assert args.train_vectors and args.learning_rate == 3e-4
    default = cloze_lm.parse_arguments([])
    assert not default.train_vectors and default.learning_rate == 1e-3


def test_generator_blanks_only_words_repeated_elsewhere_and_one_blank_per_question():
    paragraphs = load_peoples_daily(with_tags=True)[:120]
    documents = [
        sum(paragraphs[i : i + cloze_data.PD_PARAGRAPHS], [])
        for i in range(0, 120, cloze_data.PD_PARAGRAPHS)
    ]
    documents.append([("猫", "n"), ("狗", "n"), ("猫", "n"), ("鱼", "n")])
    questions = cloze_lm.generate_questions(
        documents, lambda word, tag: tag == "n", 5, np.random.default_rng(0)
    )
    assert len(questions) > 50
    for _, left, right, answer in questions:
        assert answer in left + right  # occurs elsewhere in the document
        assert "XXXXX" not in left + right and answer != "XXXXX"
    assert {answer for qid, *_, answer in questions if qid.startswith("gen20_")} == {"猫"}


# ------------------------------------------- the run folder: resume, reruns, bad input (issue #17)
def write_questions(folder, name, story, count=12):
    """FOLDER/NAME.doc_query and .answer: `count` questions blanking the animals of `story`."""
    lines, answers = [], []
    for k in range(count):
        words = story.split()
        position = [i for i, w in enumerate(words) if w in ("猫", "狗", "鱼", "兔子")][k % 5]
        answers.append(f"<qid_{k}> ||| {words[position]}\n")
        words[position] = "XXXXX"
        lines += [f"1 ||| {' '.join(words)}", f"<qid_{k}> ||| XXXXX"]
    (folder / f"{name}.answer").write_text("".join(answers), encoding="utf-8")
    (folder / f"{name}.doc_query").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(folder / f"{name}.doc_query")


def history_epochs(path):
    with open(path, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def snapshot(folder):
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in Path(folder).rglob("*")
    }


def interrupt(patch, target, name, when):
    """Ctrl-C in `target.name` when `when(*its arguments)`."""
    original = getattr(target, name)

    def stop(*args, **kwargs):
        if when(*args):
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    patch.setattr(target, name, stop)


TOY_STORY = " ".join(
    ["小 猫 和 小 狗 在 河边 钓 鱼 ， 小 猫 钓 到 了 鱼 。", "小 狗 很 开心 ， 兔子 也 来 了 。"]
    * 3
)
VALID_STORY = "小 狗 和 兔子 在 河边 ， 小 狗 看见 了 鱼 ， 兔子 也 看见 了 鱼 ， 小 猫 来 了 。"
INTERRUPTIONS = {  # Ctrl-C at the start of epoch 2; then after training, before metrics.json
    "in epoch 2": (runfolder.Evaluator, "on_epoch_begin", lambda self, epoch, *_: epoch == 1),
    "after training": (cloze_lm, "plot_learning_curves", lambda *args: True),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The default model on toy questions, 2 epochs of 3 batches, evaluated every 2 batches:
    interrupted twice (INTERRUPTIONS), rerun to the end; what each attempt left is recorded."""
    folder = tmp_path_factory.mktemp("cloze")
    toy = write_questions(folder, "toy", TOY_STORY)
    valid = write_questions(folder, "valid", VALID_STORY)
    out = folder / "run"
    argv = [  # the bare command is the main job, training
        "--sources",
        "none",
        "--train",
        toy,
        valid,
        "--valid",
        valid,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--w2v-epochs",
        "1",
        "--eval-every",
        "2",
        "--out",
        str(out),
    ]
    steps, stderr, stdout = {}, io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        for step, (target, name, when) in INTERRUPTIONS.items():
            with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as raised:
                interrupt(patch, target, name, when)
                runs.command_line(lambda: cloze_lm.main(argv))
            steps[step] = {
                "code": raised.value.code,
                "files": snapshot(out),
                "history": history_epochs(out / "history.csv"),
            }
        metrics = cloze_lm.main(argv)
    return SimpleNamespace(
        argv=argv,
        out=out,
        toy=toy,
        valid=valid,
        metrics=metrics,
        steps=steps,
        stderr=stderr.getvalue(),
        stdout=stdout.getvalue(),
    )


@pytest.mark.recipe  # the default recipe (2-layer BiLSTM of 128, 128-d vectors; pointer)
@pytest.mark.backend
def test_smoke_train_and_predict(trained, capsys):
    out, metrics = trained.out, trained.metrics
    dropped = metrics["recipe"]["dropped_overlapping_validation"]
    assert dropped == {trained.toy: 0, trained.valid: 12}
    for name in (
        "model.keras",
        "metrics.json",
        "history.csv",
        "learning_curves.png",
        "selection.json",
        "valid.predictions",
        "vocabulary.txt",
    ):
        assert (out / name).is_file(), name
    assert not (out / "backup").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert (
        metrics["parameters"]["trainable"] == 657_536 and 0 <= metrics["all_shared_accuracy"] <= 100
    )
    capsys.readouterr()
    cloze_lm.main(["predict", "--model", str(out / "model.keras"), trained.toy])
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 12
    assert all(line.startswith(f"<qid_{k}> ||| ") for k, line in enumerate(printed))


def test_interrupted_run_resumes_without_repeating_an_epoch_and_keeps_the_best(trained):
    first, second = trained.steps["in epoch 2"], trained.steps["after training"]
    assert first["code"] == second["code"] == 130
    assert trained.stderr.count("interrupted; rerun the same command to resume") == 2
    assert "Traceback" not in trained.stderr
    assert first["history"] == [0] and second["history"] == [0, 1]
    assert history_epochs(trained.out / "history.csv") == [0, 1]
    assert "metrics.json" not in first["files"] and "metrics.json" not in second["files"]
    assert "finished earlier at epoch 2" in trained.stdout  # the third attempt trained nothing
    selection = json.loads((trained.out / "selection.json").read_text())
    # every 2 batches, counted across the resume as without one
    evaluations = [(entry["epoch"], entry["at"]) for entry in selection["log"]]
    assert evaluations == [(1, "batch 2"), (1, "end"), (2, "batch 1"), (2, "end")]
    seen = [entry["questions"] for entry in selection["log"]]  # training questions, batch 4
    count = trained.metrics["recipe"]["training_questions"]
    assert seen == [min(8, count), count, min(16, 2 * count), 2 * count]
    best = max(entry["selection_accuracy"] for entry in selection["log"])
    assert selection["best"] == trained.metrics["selected"]
    assert selection["best"]["selection_accuracy"] == best
    assert trained.metrics["selection_accuracy"] == pytest.approx(best)  # model.keras is the best


def test_finished_run_is_reported_and_not_trained_again(trained, capsys):
    before = snapshot(trained.out)
    assert cloze_lm.main(trained.argv) == json.loads((trained.out / "metrics.json").read_text())
    assert "holds a finished run of cloze_lm" in capsys.readouterr().out
    assert snapshot(trained.out) == before


def test_a_stopped_run_can_end_at_the_epochs_it_reached_and_be_evaluated(tmp_path, trained):
    """--epochs is only where training stops: a run meant for 3 epochs, stopped in its second,
    is rerun with --epochs 1, trains nothing more and is evaluated once on the held-out half."""
    argv = [*trained.argv[:-2], "--out", str(tmp_path / "run")]
    argv[argv.index("--epochs") + 1] = "3"
    stop = (runfolder.Evaluator, "on_epoch_begin", lambda self, epoch, *_: epoch == 1)
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit):
        interrupt(patch, *stop)
        runs.command_line(lambda: cloze_lm.main(argv))
    argv[argv.index("--epochs") + 1] = "1"
    metrics = cloze_lm.main(argv)
    assert history_epochs(tmp_path / "run" / "history.csv") == [0]
    assert metrics["config"]["epochs"] == 1 and 0 <= metrics["held_out_accuracy"] <= 100


def test_changed_settings_are_one_line_and_touch_nothing(trained, refuses):
    argv = [*trained.argv[:-2], "--max-side", "40", *trained.argv[-2:]]
    refuses(
        lambda: cloze_lm.main(argv),
        match=r"other settings: --max-side 250 \(now 40\)",
        untouched=trained.out,
    )


NUMBERS = (
    ("--questions-per-document", "0"),
    ("--max-side", "-1"),
    ("--max-questions", "0"),
    ("--w2v-epochs", "0"),
    ("--eval-every", "-1"),
    ("--epochs", "0"),
    ("--batch-size", "0"),
)


def bad_input(case, tmp_path, trained):
    """The command line of one bad input; it must leave tmp_path as it was."""
    run, other, model = tmp_path / "run", tmp_path / "other", tmp_path / "run" / "model.keras"
    shutil.copytree(trained.out, run)
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"script": "simpler_wordvec", "settings": {}}))
    (other / "model.keras").write_bytes(model.read_bytes())
    for name, text in {
        "notes.txt": "not a model",
        "empty.doc_query": "",
        "empty.answer": "",
        "bad.doc_query": "1 ||| 小 猫 XXXXX\nbroken\n<qid_0> ||| q\n",
        "once.doc_query": "1 ||| 猫 XXXXX 狗\n<qid_0> ||| XXXXX\n",  # no word twice
        "once.answer": "<qid_0> ||| 猫\n",
    }.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "x.weights.h5").write_bytes(b"\x89HDF\r\n")
    if case == "unfinished run":
        (run / "metrics.json").unlink()
    elif case == "damaged model.keras":
        model.write_bytes(b"PK\x03\x04 not a zip")
    predict = ["predict", trained.toy, "--model"]
    train = ["train", "--sources", "none", "--valid", trained.valid, "--out", str(tmp_path / "new")]
    return {
        "batch size -1": [*predict, str(run), "--batch-size", "-1"],
        "batch size 0": [*predict, str(run), "--batch-size", "0"],
        "another script's model": [*predict, str(other / "model.keras")],
        "a text file as the model": [*predict, str(tmp_path / "notes.txt")],
        "a weights file as the model": [*predict, str(tmp_path / "x.weights.h5")],
        "missing model": [*predict, str(tmp_path / "missing")],
        "unfinished run": [*predict, str(run)],
        "damaged model.keras": [*predict, str(run)],
        "empty questions file": ["predict", str(tmp_path / "empty.doc_query"), "--model", str(run)],
        "malformed questions file": [
            "predict",
            str(tmp_path / "bad.doc_query"),
            "--model",
            str(run),
        ],
        "missing questions file": ["predict", str(tmp_path / "no.doc_query"), "--model", str(run)],
        "output over the input": [*predict, str(run), "--output", trained.toy],
        "baselines on an empty file": ["baselines", "--valid", str(tmp_path / "empty.doc_query")],
        "baselines without answers": ["baselines", "--valid", str(tmp_path / "bad.doc_query")],
        "train on an empty valid file": [*train, "--valid", str(tmp_path / "empty.doc_query")],
        "out under a file": [*train, "--out", str(tmp_path / "notes.txt" / "run")],
        "out holds other files": [*train, "--out", str(tmp_path)],
        "out is another script's run": [*train, "--out", str(other)],
        "no training questions": train,
        "missing train file": [*train, "--train", str(tmp_path / "no.doc_query")],
        "no word twice for word2vec": [*train, "--train", str(tmp_path / "once.doc_query")],
        **{f"{flag} {value}": [*train, flag, value] for flag, value in NUMBERS},
    }[case]


@pytest.mark.parametrize(
    "case, message",
    [
        ("batch size -1", "argument --batch-size: -1 is not a positive integer"),
        ("batch size 0", "argument --batch-size: 0 is not a positive integer"),
        ("another script's model", "a run of simpler_wordvec, not of cloze_lm"),
        ("a text file as the model", "notes.txt: not a run folder of cloze_lm"),
        ("a weights file as the model", "x.weights.h5: not a run folder of cloze_lm"),
        ("missing model", "missing: no such file or folder"),
        ("unfinished run", "the run has no metrics.json yet"),
        ("damaged model.keras", r"cannot load \S*model.keras \(\w+"),
        ("empty questions file", "empty.doc_query: holds no questions"),
        ("malformed questions file", r"bad.doc_query:2: expected 'N \|\|\| tokens'"),
        ("missing questions file", "No such file or directory"),
        ("output over the input", "is the questions file"),
        ("baselines on an empty file", "empty.doc_query: holds no questions"),
        ("baselines without answers", r"bad.doc_query: need cloze.valid.doc_query and .answer"),
        ("train on an empty valid file", "empty.doc_query: holds no questions"),
        ("out under a file", "notes.txt is a file, not a folder"),
        ("out holds other files", "holds files but no run.json"),
        ("out is another script's run", "is a run of simpler_wordvec, not of cloze_lm"),
        ("no training questions", "no training questions"),
        ("missing train file", "No such file or directory"),
        ("no word twice for word2vec", "no word occurs twice in the word2vec corpus"),
        *[(f"{flag} {value}", f"argument {flag}: {value} is not") for flag, value in NUMBERS],
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, trained, refuses, case, message):
    argv = bad_input(case, tmp_path, trained)
    refuses(lambda: cloze_lm.main(argv), match=message, untouched=tmp_path)


# ------------------------------------------------------------------- mixed precision, several devices (issue #19)
@pytest.mark.backend
def test_mixed_precision_keeps_the_pointer_logits_and_loss_float32():
    from common import devices

    with devices.placement(1, mixed_precision=True):
        keras.utils.set_random_seed(0)
        model = cloze_lm.build_model(50)
        model.compile(optimizer="adam", loss=cloze_lm.candidate_cross_entropy)
        left, right = np.array([[5, 3, 0, 0], [2, 2, 2, 2]]), np.array([[7, 3, 9, 0], [4, 0, 0, 0]])
        target = np.zeros((2, 8), "float32")
        target[0, 1], target[1, 4] = 1, 1
        loss = float(np.asarray(model.train_on_batch((left, right), target)).ravel()[0])
        logits = model((left, right))
    assert model.get_layer("bilstm1").compute_dtype == "bfloat16" and np.isfinite(loss)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    probabilities = cloze_lm.masked_softmax(keras.ops.convert_to_numpy(logits).astype("float64"))
    assert probabilities[0, 2:4].sum() < 1e-6  # padding keeps no mass


def test_devices_that_are_not_there_stop_before_anything_is_written(tmp_path):
    with pytest.raises(
        SystemExit, match=r"^error: --devices 64: (only \d|data-parallel training needs)"
    ):
        cloze_lm.main(["train", "--devices", "64", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------- one command grammar (issue #18)
def test_quick_changes_defaults_only_and_a_given_flag_wins():
    quick = cloze_lm.parse_arguments(["--quick"])
    assert (quick.command, quick.epochs, quick.eval_every, quick.max_side) == ("train", 2, 0, 60)
    assert (quick.questions_per_document, quick.max_questions, quick.w2v_epochs) == (6, 4000, 5)
    assert cloze_lm.parse_arguments(["--quick", "--epochs", "3"]).epochs == 3
    given = cloze_lm.parse_arguments(
        ["train", "--quick", "--eval-every", "100", "--max-side", "250"]
    )
    assert (given.eval_every, given.max_side, given.epochs) == (100, 250, 2)
    full = cloze_lm.parse_arguments([])
    assert (full.epochs, full.eval_every, full.max_side, full.max_questions) == (30, 100, 250, None)
    assert (full.questions_per_document, full.w2v_epochs) == (20, 10)
    assert full.sources == ["cft", "cmrc2019", "pd"]  # chosen on the selection half (issue #15)


def test_verbs_are_predict_and_baselines():
    assert (
        cloze_lm.parse_arguments(["predict", "--model", "run", "q.doc_query"]).command == "predict"
    )
    assert cloze_lm.parse_arguments(["baselines"]).command == "baselines"
    with pytest.raises(SystemExit):
        cloze_lm.parse_arguments(["predict", "q.doc_query"])  # --model is required
