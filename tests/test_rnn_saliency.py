"""rnn_saliency.py: the article's importance identities, the data rules, the attribution baselines, smoke runs."""

import contextlib
import io
import json
import re
from functools import partial

import keras
import numpy as np
import pytest

import rnn_saliency
from common import attribution
from rnn_saliency import (
    MAXLEN,
    build_model,
    embedding_attributions,
    hidden_state_scores,
    importances_from_states,
    length_batches,
    predict,
    ranking,
)


@pytest.fixture(scope="module")
def untrained():
    keras.utils.set_random_seed(0)
    classifier, states = build_model(30)
    return classifier, states


def test_toy_states_give_the_articles_importances():
    states = np.array([[[1.0, 0.0], [1.0, 1.0], [2.0, 1.0]]])  # h_1..h_3; h_0 = 0 is prepended
    scores = importances_from_states(states, states[:, -1])
    np.testing.assert_allclose(scores[0], [0.36754, 0.18524, 0.44721], atol=1e-5)
    assert scores.sum() == pytest.approx(1.0)


@pytest.mark.backend
def test_importances_sum_to_one_and_last_is_non_negative(untrained):
    classifier, _ = untrained
    rng = np.random.default_rng(1)
    ids = np.zeros((8, 40), np.int32)
    lengths = rng.integers(1, 40, size=8)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, 31, size=length)
    scores = hidden_state_scores(classifier, ids)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert all(scores[row, length - 1] >= 0 for row, length in enumerate(lengths))


@pytest.mark.backend
@pytest.mark.parametrize("dropouts", [(), (0.4, 0.25)], ids=["article", "improved"])
def test_oov_word_mid_sentence_gets_exactly_zero_and_leaves_final_state(dropouts):
    keras.utils.set_random_seed(0)
    classifier, states = build_model(30, *dropouts)
    with_oov = np.array([[5, 9, 0, 12, 3]], np.int32)
    without = np.array([[5, 9, 12, 3]], np.int32)
    assert hidden_state_scores(classifier, with_oov)[0, 2] == 0.0
    final_with, final_without = (
        states.predict_on_batch(with_oov)[1],
        states.predict_on_batch(without)[1],
    )
    np.testing.assert_allclose(np.asarray(final_with), np.asarray(final_without), atol=1e-6)


def test_length_batches_cover_every_row_once_within_one_length_bucket():
    rng = np.random.default_rng(3)
    ids = np.zeros((300, MAXLEN), np.int32)
    for row, end in enumerate(rng.integers(0, MAXLEN + 1, size=300)):
        ids[row, :end] = rng.integers(0, 5, size=end)  # OOV zeros inside sentences too
    ids[0, :] = 0  # an all-OOV row
    batches = length_batches(ids, 32)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    ends = [np.flatnonzero(row)[-1] + 1 if row.any() else 0 for row in ids]
    for rows in batches:
        assert (
            len(rows) <= 32 and len({-(-ends[r] // rnn_saliency.LENGTH_BUCKET) for r in rows}) == 1
        )


@pytest.mark.backend
def test_hidden_state_scores_do_not_depend_on_batching(untrained):
    classifier, _ = untrained
    rng = np.random.default_rng(4)
    ids = np.zeros((40, 60), np.int32)
    for row, end in enumerate(rng.integers(1, 61, size=40)):
        ids[row, :end] = rng.integers(1, 31, size=end)
    np.testing.assert_allclose(
        hidden_state_scores(classifier, ids, batch_size=7),
        hidden_state_scores(classifier, ids, batch_size=1024),
        atol=1e-5,
    )


def test_ranking_is_a_sorted_permutation_of_positions():
    rng = np.random.default_rng(2)
    words = [f"w{i}" for i in range(130)][:MAXLEN]
    result = ranking(words, rng.normal(size=len(words)))
    assert sorted(position for position, _, _ in result) == list(range(len(words)))
    assert [score for _, _, score in result] == sorted(
        (score for _, _, score in result), reverse=True
    )
    assert len(result) <= MAXLEN and all(words[position] == word for position, word, _ in result)


def test_bad_data_is_one_line(tmp_path):  # the readers' own tests: test_common_chinese_text.py
    with pytest.raises(SystemExit, match="error: .*pos.xls"):
        rnn_saliency.main(["--data", str(tmp_path / "missing")])
    for name in ("pos.xls", "neg.xls"):
        (tmp_path / name).write_bytes(b"not a spreadsheet")
    with pytest.raises(SystemExit, match="error: .*(xlrd|cannot read)"):
        rnn_saliency.main(["train", "--data", str(tmp_path)])


def test_quick_changes_defaults_only_and_so_does_improved():
    parse = rnn_saliency.parse_arguments
    assert parse(["--quick", "--epochs", "3"]).epochs == 3
    quick = parse(["--quick"])
    assert (quick.command, quick.epochs, quick.train_size, quick.saliency_sentences) == (
        "train",
        2,
        4000,
        200,
    )
    assert (parse([]).epochs, parse([]).min_count, parse([]).train_size) == (5, 10, None)
    assert (parse(["--improved"]).epochs, parse(["--improved"]).min_count) == (8, 3)
    assert parse(["--improved", "--min-count", "10", "--epochs", "5"]).min_count == 10
    assert parse(["--improved", "--epochs", "5"]).epochs == 5  # it once became 8
    assert (
        parse(["--quick", "--improved"]).epochs == 2
        and parse(["--quick-train", "9"]).train_size == 9
    )
    assert parse(["predict", "--model", "m", "好"]).command == "predict"


@pytest.mark.backend
def test_integrated_gradients_are_complete(untrained):
    classifier, _ = untrained
    ids = np.array([[3, 8, 0, 21, 4, 17], [6, 6, 2, 0, 0, 0]], np.int32)
    attributions = embedding_attributions(classifier, ids, steps=32)
    probabilities = predict(classifier, ids)
    sign = np.where(probabilities >= 0.5, 1.0, -1.0)
    zero = rnn_saliency.signed_probability(
        classifier, np.zeros((2, 6, 128), "float32"), ids != 0, np.ones(2, "float32")
    )
    expected = sign * (probabilities - keras.ops.convert_to_numpy(zero))
    np.testing.assert_allclose(attributions.sum(axis=1), expected, rtol=0.05, atol=1e-7)


@pytest.mark.backend
def test_deleting_every_word_gives_the_empty_sentence_prediction(untrained):
    classifier, _ = untrained
    ids = np.array([[3, 8, 11, 21], [6, 6, 2, 0]], np.int32)
    original = predict(classifier, ids)
    empty = predict(classifier, np.zeros((1, 1), np.int32))[0]
    drop = attribution.deletion_curves(partial(predict, classifier), ids, np.ones(ids.shape), (4,))[
        0
    ]
    sign = np.where(original >= 0.5, 1.0, -1.0)
    assert drop == pytest.approx(np.mean(sign * (original - empty)), abs=1e-6)


# ------------------------------------------------------------------------- GPU path, default recipe (issue #19)
def write_reviews(path, rows=200, longer=False):
    """Tiny reviews; the numbers glued to them are out-of-vocabulary words, so masks get holes as
    in real data. `longer`: every fourth review has 11 words, so batches differ in length."""
    rng = np.random.default_rng(0)
    good, bad = ["很好", "喜欢", "不错", "满意"], ["很差", "失望", "退货", "垃圾"]
    lines = [
        f"{'，'.join(rng.choice(good if label else bad, 11 if longer and k % 4 == 0 else 3))}"
        f"{k},{label}"
        for k in range(rows)
        for label in (0, 1)
    ]
    path.write_text("text,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.backend
def test_the_lstm_never_takes_the_cudnn_path_even_after_loading(tmp_path):
    """cuDNN wants right-padded masks without empty rows; 81% of the training rows mask an OOV word, 3 all words."""
    classifier, _ = build_model(30)
    assert classifier.get_layer("lstm").use_cudnn is False
    ids = np.array([[3, 0, 5, 0, 0], [0, 0, 0, 0, 0]], "int32")  # a hole, a row of OOV words only
    assert np.isfinite(predict(classifier, ids)).all()
    classifier.save(
        tmp_path / "model.keras"
    )  # Keras does not save use_cudnn: loading switches it off
    (tmp_path / "run.json").write_text('{"script": "rnn_saliency"}')
    (tmp_path / "vocabulary.json").write_text('{"word_to_id": {"好": 1}}')
    loaded, word_to_id = rnn_saliency.load_run(tmp_path / "model.keras")
    assert loaded.get_layer("lstm").use_cudnn is False and word_to_id == {"好": 1}


@pytest.mark.recipe
@pytest.mark.backend
def test_default_recipe_trains_evaluates_and_explains_on_tiny_data(tmp_path):
    if keras.backend.backend() == "torch":
        pytest.skip(
            "too slow under torch on CPU: its masked LSTM steps through time in Python, and this run "
            "(training, occlusion, integrated gradients) took 34 s of CPU against 4 s under TensorFlow; "
            "the backend-marked LSTM tests in this file do run under torch"
        )
    out = tmp_path / "run"
    metrics = rnn_saliency.main(
        [  # the bare command trains
            "--data",
            str(write_reviews(tmp_path / "tiny.csv")),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--saliency-sentences",
            "10",
        ]
    )
    assert (
        metrics["recipe"] == "article"
        and metrics["min_count"] == 10
        and sum(metrics["sizes"]) == 400
    )
    for name in (
        "model.keras",
        "vocabulary.json",
        "metrics.json",
        "history.csv",
        "learning_curves.png",
        "deletion_curves.png",
    ):
        assert (out / name).is_file(), name


# ---------------------------------------------------------- the run-folder contract (issue #17)
def history_epochs(path):
    return [int(row.split(",")[0]) for row in path.read_text().splitlines()[1:]]


class CtrlC(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def interrupted(*args):
    raise KeyboardInterrupt


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run at --batch-size 16 (TensorFlow failed on a batch shorter than the first two),
    stopped on its way: Ctrl-C at the start of epoch 2, a rerun with another --min-count, Ctrl-C
    during the deletion curves (after training), then the same command to the end.
    Returns (folder, argv, metrics, what each step left)."""
    from common import runfolder, runs

    folder = tmp_path_factory.mktemp("trained")
    out, seen, real_fit = folder / "run", {"fits": []}, runfolder.fit
    data = write_reviews(folder / "tiny.csv", longer=True)
    argv = [
        "train",
        "--quick",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--baseline",
        "--saliency-sentences",
        "10",
        "--min-count",
        "3",
    ]

    def fit(*args, callbacks=(), **kwargs):
        seen["fits"].append(kwargs)
        return real_fit(*args, callbacks=[*callbacks, CtrlC()], **kwargs)

    def files():
        return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*")}

    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(io.StringIO()) as err:
        patch.setattr(runfolder, "fit", fit)
        with pytest.raises(SystemExit) as raised:
            runs.command_line(lambda: rnn_saliency.main(argv))
        epochs = history_epochs(out / "history.csv")
        seen["ctrl-c"] = raised.value.code, err.getvalue().strip(), epochs, files()
        with pytest.raises(SystemExit) as raised:
            rnn_saliency.main([*argv[:-1], "4"])
        seen["changed"] = raised.value.code, files() == seen["ctrl-c"][-1]
        patch.setattr(runfolder, "fit", real_fit)
        patch.setattr(attribution, "compare_methods", interrupted)
        with pytest.raises(KeyboardInterrupt):
            rnn_saliency.main(argv)
        seen["after training"] = history_epochs(out / "history.csv"), files()
    with contextlib.redirect_stdout(io.StringIO()) as output:
        metrics = rnn_saliency.main(argv)
    seen["finished"] = output.getvalue(), files()
    return out, argv, metrics, seen


def test_interrupted_runs_resume_without_repeating_an_epoch_and_keep_the_best(trained):
    from common import runs

    out, _, metrics, seen = trained
    code, message, epochs, files = seen["ctrl-c"]
    assert code == 130 and message == "interrupted; rerun the same command to resume"
    assert epochs == [0] and "model.keras" not in files and "metrics.json" not in files
    code, untouched = seen["changed"]  # it once overwrote vocabulary.json beside the old model
    assert re.fullmatch(r"error: --out .* other settings: --min-count 3 \(now 4\); .*", code)
    assert untouched
    epochs, files = seen["after training"]
    assert epochs == [0, 1] and "model.keras" in files and "metrics.json" not in files
    output, finished = seen["finished"]  # the rerun continued after training: no epoch again
    assert "finished earlier at epoch 2; continuing after it" in output
    assert finished["history.csv"] == files["history.csv"]
    assert history_epochs(out / "history.csv") == [0, 1]
    assert seen["fits"][0]["monitor"] == "val_accuracy" and seen["fits"][0]["mode"] == "max"
    validation = runs.read_history(out / "history.csv")["val_accuracy"]
    assert metrics["epochs"] == {"trained": 2, "kept": int(np.argmax(validation)) + 1}
    assert metrics["validation_accuracy"] == pytest.approx(max(validation), abs=1e-6)


def test_training_batches_share_one_length_whatever_the_batch_size():
    ids = np.zeros((50, MAXLEN), np.int32)
    for row in range(50):
        ids[row, : 5 + row] = 7  # 5 to 54 words: trimmed to 60 columns
    for batch_size in (1, 16, 32, 50):
        batches = rnn_saliency.Batches(ids, np.zeros(50), batch_size, shuffle=True, seed=0)
        shapes = [batches[i][0].shape for i in range(len(batches))]
        assert {width for _, width in shapes} == {60} and sum(rows for rows, _ in shapes) == 50


def test_training_and_explain(trained, tmp_path, capsys):
    out, _, metrics, _ = trained
    for name in (
        "run.json",
        "model.keras",
        "vocabulary.json",
        "metrics.json",
        "history.csv",
        "learning_curves.png",
        "deletion_curves.png",
        "segmented.json",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob("backup*")) and not list(out.glob(".*"))  # no resume state, temporary
    assert set(metrics["saliency"]) == {
        "hidden state (article)",
        "occlusion",
        "gradient x input",
        "integrated gradients",
        "random",
    }
    recorded = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert recorded["script"] == "rnn_saliency"
    assert recorded["test_accuracy"] == metrics["test_accuracy"]
    batch = tmp_path / "sentences.txt"
    batch.write_text("很好，喜欢\n很差，失望\n", encoding="utf-8")
    results = rnn_saliency.main(
        [
            "explain",
            "--model",
            str(out / "model.keras"),
            "很好，不错",
            "--html",
            str(tmp_path / "a.html"),
            "--batch",
            str(batch),
        ]
    )
    assert len(results) == 3 and "p(positive)" in capsys.readouterr().out
    jsonl = tmp_path / "sentences.jsonl"
    assert len(jsonl.read_text(encoding="utf-8").splitlines()) == 3
    assert "<span" in (tmp_path / "a.html").read_text(encoding="utf-8")
    rnn_saliency.main(
        [
            "explain",
            "--model",
            str(out),
            "--batch",
            str(jsonl),  # a .jsonl input
            "--output",
            str(tmp_path / "b.jsonl"),
        ]
    )
    assert len((tmp_path / "b.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    predicted = rnn_saliency.main(["predict", "--model", str(out), "很好，不错", "很差"])
    assert [set(r) for r in predicted] == [{"sentence", "probability"}] * 2
    assert [r["probability"] for r in predicted[:1]] == [r["probability"] for r in results[:1]]


def test_a_finished_run_is_reported_not_trained_again(trained, capsys):
    out, argv, metrics, _ = trained
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*"))
    assert rnn_saliency.main(argv)["test_accuracy"] == metrics["test_accuracy"]
    assert "holds a finished run of rnn_saliency" in capsys.readouterr().out
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*")) == before


EXPLAIN = "explain --model {run}"
# fmt: off
BAD_INPUTS = {  # case: (command, what its one line says, the folder that must stay as it was)
    "batch size 0": ("train --batch-size 0", "--batch-size: 0 is not a positive integer", "fresh"),
    "batch size -3": ("train --batch-size -3", "not a positive integer", "fresh"),
    "epochs 0": ("train --epochs 0", "--epochs: 0 is not a positive integer", "fresh"),
    "saliency sentences 0": ("train --saliency-sentences 0", "--saliency-sentences: 0 is", "fresh"),
    "min count -1": ("train --min-count -1", "--min-count: -1 is not", "fresh"),
    "quick train 0": ("train --quick-train 0", "--quick-train: 0 is not", "fresh"),
    "train size 0": ("--train-size 0", "--train-size/--quick-train: 0 is not", "fresh"),
    "empty vocabulary": ("train --data {data} --out {fresh}/run --min-count 100000", "--min-count 100000: no word .* the vocabulary would be empty", "fresh"),
    "batch larger than the data": ("train --data {data} --out {fresh}/run --batch-size 100000", r"--batch-size 100000: more than the 3\d\d training", "fresh"),
    "too few texts": ("train --data {few} --out {fresh}/run", "5 texts are too few", "fresh"),
    "missing data": ("train --data {fresh}/missing.csv --out {fresh}/run", "pos.xls", "fresh"),
    "out under a file": ("train --data {data} --out {inputs}/s.txt/run", "is a file, not a folder", "inputs"),
    "out holds other files": ("train --data {data} --out {inputs}", "holds files but no run.json", "inputs"),
    "changed settings": (None, r"--min-count 3 \(now 4\)", "run"),  # trained run's, --min-count 4
    "model missing": ("explain --model {fresh}/nothing 好", "no such file", "fresh"),
    "model a text file": ("explain --model {inputs}/s.txt 好", "not a run folder of rnn_saliency", "inputs"),
    "model a weights file": ("explain --model {inputs}/model.weights.h5 好", "not a run folder", "inputs"),
    "model of another script": ("explain --model {inputs}/cloze/model.keras 好", "a run of cloze_lm, not of rnn_saliency", "inputs"),
    "model of an unfinished run": ("explain --model {inputs}/unfinished 好", "has no model.keras, vocabulary.json yet", "inputs"),
    "predict: model missing": ("predict --model {fresh}/nothing 好", "no such file", "fresh"),
    "predict: no sentences": ("predict --model {run}", "give sentences", "run"),
    "predict has no --html": ("predict --model {run} 好 --html {inputs}/a.html", "unrecognized arguments: --html", "inputs"),
    "batch .jsonl replaced by its output": (f"{EXPLAIN} --batch {{inputs}}/s.jsonl", r"s.jsonl \(the default\) would overwrite the --batch", "inputs"),
    "output is the batch input": (f"{EXPLAIN} --batch {{inputs}}/s.txt --output {{inputs}}/s.txt", "--output .* would overwrite the --batch input", "inputs"),
    "html is the batch input": (f"{EXPLAIN} --batch {{inputs}}/s.txt --html {{inputs}}/s.txt", "--html .* would overwrite the --batch input", "inputs"),
    "batch file missing": (f"{EXPLAIN} --batch {{inputs}}/missing.txt", "No such file", "inputs"),
    "no sentences": (EXPLAIN, "give sentences", "run"),
}
# fmt: on


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_touches_nothing(case, trained, tmp_path, refuses):
    run, trained_argv, _, _ = trained
    inputs = tmp_path / "inputs"
    for folder in ("fresh", "inputs/cloze", "inputs/unfinished"):
        (tmp_path / folder).mkdir(parents=True)
    (inputs / "s.txt").write_text("很好\n", encoding="utf-8")
    (inputs / "s.jsonl").write_text("很好\n", encoding="utf-8")
    (inputs / "model.weights.h5").write_bytes(b"\x89HDF\r\n")
    (inputs / "cloze" / "run.json").write_text('{"script": "cloze_lm"}')
    (inputs / "cloze" / "model.keras").write_bytes(b"PK")
    (inputs / "unfinished" / "run.json").write_text('{"script": "rnn_saliency"}')
    (tmp_path / "few.csv").write_text("text,label\n好,1\n差,0\n很好,1\n很差,0\n一般,1\n", "utf-8")
    command, match, untouched = BAD_INPUTS[case]
    places = {"fresh": tmp_path / "fresh", "inputs": inputs, "run": run}
    names = {**places, "data": trained_argv[3], "few": tmp_path / "few.csv"}
    argv = [*trained_argv[:-1], "4"] if command is None else command.format(**names).split()
    refuses(lambda: rnn_saliency.main(argv), match=match, untouched=places[untouched])
