"""common/runfolder.py: the run-folder contract (settings, finished runs, readers) and the resumable fit."""

import argparse
import csv
import json

import numpy as np
import pytest

from common import runfolder, runs


def test_settings_leave_out_runtime_flags_and_become_plain_json():
    args = argparse.Namespace(
        out="x", quick=True, workers=4, epochs=3, size=(1, 2), data=None, func=print
    )
    assert runfolder.settings_of(args) == {"data": None, "epochs": 3, "size": [1, 2]}


def test_new_resume_finished(tmp_path):
    out = tmp_path / "run"
    run = runfolder.open_run("demo", out, {"epochs": 3})
    assert run.state == "new" and not out.exists()  # nothing is written before begin()
    run.begin()
    assert json.loads((out / "run.json").read_text())["settings"] == {"epochs": 3}
    assert runfolder.open_run("demo", out, {"epochs": 3}).state == "resume"
    run.finish({"accuracy": 0.5})
    again = runfolder.open_run("demo", out, {"epochs": 3})
    assert again.finished and again.report_finished() == {"script": "demo", "accuracy": 0.5}


def test_changed_settings_are_one_line_naming_them_and_touch_nothing(tmp_path):
    out = tmp_path / "run"
    runfolder.open_run("demo", out, {"epochs": 3, "smoothing": 0.1}).begin()
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    with pytest.raises(SystemExit, match=r"other settings: --smoothing 0.1 \(now 0.5\); rerun"):
        runfolder.open_run("demo", out, {"epochs": 3, "smoothing": 0.5})
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before


def test_runtime_flags_are_not_compared_so_a_resume_may_move_them(tmp_path):
    out = tmp_path / "run"
    runfolder.open_run("demo", out, {"epochs": 30, "smoothing": 0.1}).begin()
    assert runfolder.open_run("demo", out, {"smoothing": 0.1}, ("epochs",)).state == "resume"
    with pytest.raises(SystemExit, match=r"--smoothing 0.1 \(now 0.5\)"):
        runfolder.open_run("demo", out, {"smoothing": 0.5}, ("epochs",))
    with pytest.raises(SystemExit, match=r"--epochs 30 \(now None\)"):
        runfolder.open_run("demo", out, {"smoothing": 0.1})


@pytest.mark.parametrize(
    "case, message",
    [
        ("other_script", "a run of other, not of demo"),
        ("under_a_file", "is a file, not a folder"),
        ("foreign_files", "holds files but no run.json"),
        ("bad_manifest", "not a readable JSON file"),
        ("list_manifest", "not a JSON object"),
    ],
)
def test_open_run_refuses_in_one_line(tmp_path, case, message):
    out = tmp_path / "run"
    if case == "other_script":
        runfolder.open_run("other", out, {}).begin()
    elif case == "under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    elif case == "foreign_files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        out.mkdir()
        (out / "run.json").write_text("{half" if case == "bad_manifest" else "[1, 2]")
    with pytest.raises(SystemExit, match=message) as raised:
        runfolder.open_run("demo", out, {})
    assert "\n" not in str(raised.value)


def test_find_run_accepts_the_folder_or_a_file_in_it_and_refuses_others(tmp_path):
    run = runfolder.open_run("demo", tmp_path / "run", {})
    run.begin()
    (run.path / "model.keras").write_text("x")
    assert runfolder.find_run("demo", run.path) == run.path
    assert runfolder.find_run("demo", run.path / "model.keras") == run.path
    with pytest.raises(SystemExit, match="a run of demo, not of other"):
        runfolder.find_run("other", run.path)
    with pytest.raises(SystemExit, match="no such file"):
        runfolder.find_run("demo", tmp_path / "missing")
    (tmp_path / "loose.keras").write_text("x")
    with pytest.raises(SystemExit, match="not a run folder of demo"):
        runfolder.find_run("demo", tmp_path / "loose.keras")
    with pytest.raises(SystemExit, match="no vectors.npy yet"):
        runfolder.find_run("demo", run.path, need=("vectors.npy",))


def test_metrics_json_is_strict(tmp_path):
    runs.write_json(
        tmp_path / "m.json",
        {"a": float("nan"), "b": [np.float32("inf"), 1.0], "c": np.array([np.nan])},
    )
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text) == {"a": None, "b": [None, 1.0], "c": [None]} and "NaN" not in text


@pytest.mark.parametrize(
    "kind, text, ok",
    [
        (runs.positive_int, "3", 3),
        (runs.positive_int, "0", None),
        (runs.positive_int, "-1", None),
        (runs.positive_int, "x", None),
        (runs.non_negative_int, "0", 0),
        (runs.positive_float, "0", None),
        (runs.probability, "1", 1.0),
        (runs.probability, "1.5", None),
        (runs.probability, "nan", None),
    ],
)
def test_numeric_flags_are_checked_at_parse_time(kind, text, ok):
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(text)
    else:
        assert kind(text) == ok


def test_ctrl_c_is_one_line_and_exit_130(capsys):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as raised:
        runs.command_line(interrupted)
    assert raised.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted; rerun the same command to resume"


# ------------------------------------------------------------------------------------------ resumable fit
def tiny_problem():
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 1.0]) > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(
        optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return model, x, y


def history_epochs(path):
    with open(path, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.mark.backend
def test_interrupted_fit_resumes_without_repeating_an_epoch_and_keeps_the_best(
    tmp_path, interrupt_at
):
    model, x, y = tiny_problem()
    options = dict(
        folder=tmp_path,
        epochs=5,
        monitor="val_loss",
        mode="min",
        batch_size=16,
        validation_data=(x, y),
        shuffle=False,
    )
    with pytest.raises(KeyboardInterrupt):
        runfolder.fit(model, x, y, callbacks=[interrupt_at(3)], **options)
    assert history_epochs(tmp_path / "history.csv") == [0, 1, 2]
    model, x, y = tiny_problem()  # a fresh process: new model, same folder
    history, tracker = runfolder.fit(model, x, y, **options)
    assert history_epochs(tmp_path / "history.csv") == [0, 1, 2, 3, 4]
    best = int(np.argmin(history["val_loss"]))
    assert tracker.state["best"]["epoch"] == best + 1
    loss = model.evaluate(x, y, verbose=0)[0]
    assert loss == pytest.approx(
        history["val_loss"][best], rel=1e-4
    )  # the model holds the best epoch
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == sorted(
        {"state.json", "epoch-5.weights.h5", f"epoch-{best + 1}.weights.h5"}
    )
    assert all(seconds > 0 for seconds in history["seconds"])


@pytest.mark.backend
def test_patience_stops_and_a_rerun_does_not_train_again(tmp_path, capsys):
    model, x, y = tiny_problem()
    options = dict(
        folder=tmp_path,
        epochs=30,
        monitor="val_accuracy",
        patience=2,
        batch_size=16,
        validation_data=(x[:8], 1 - y[:8]),
    )  # a validation set that gets worse
    history, tracker = runfolder.fit(model, x, y, **options)
    assert tracker.done and len(history["loss"]) < 30
    rows = history_epochs(tmp_path / "history.csv")
    history_again, _ = runfolder.fit(model, x, y, **options)
    assert history_epochs(tmp_path / "history.csv") == rows and history_again == history
    assert "finished earlier" in capsys.readouterr().out


def test_the_refuses_fixture_checks_one_line_and_an_untouched_folder(tmp_path, refuses):
    (tmp_path / "a.txt").write_text("x")

    def bad():
        raise SystemExit("error: nope")

    assert refuses(bad, match="nope", untouched=tmp_path) == "error: nope"

    def touches():
        (tmp_path / "b.txt").write_text("y")
        raise SystemExit("error: nope")

    with pytest.raises(AssertionError, match="folder changed"):
        refuses(touches, untouched=tmp_path)
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=runs.positive_int)
    assert "not a positive integer" in refuses(lambda: parser.parse_args(["--epochs", "0"]))


def test_load_run_model_gives_folder_settings_and_model_or_one_line(tmp_path, refuses):
    import keras

    run = runfolder.open_run("script", tmp_path / "run", {"units": 2})
    run.begin()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(run.path / "model.keras")
    run.finish({"accuracy": 1.0})
    folder, settings, loaded = runfolder.load_run_model("script", run.path / "model.keras")
    assert folder == run.path and settings == {"units": 2}
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
    (run.path / "model.keras").write_bytes(b"not a zip")
    refuses(
        lambda: runfolder.load_run_model("script", run.path),
        match="cannot load",
        untouched=tmp_path,
    )
    refuses(
        lambda: runfolder.load_run_model("other", run.path),
        match="a run of script, not of other",
        untouched=tmp_path,
    )


def test_run_job_reports_a_finished_run_without_running_the_job(tmp_path):
    from types import SimpleNamespace

    args = SimpleNamespace(out=str(tmp_path / "run"), epochs=2, devices=1, mixed_precision=False)
    calls = []

    def job(args, run, placement):
        calls.append(run.state)
        run.begin()
        run.finish({"epochs": args.epochs})
        return "trained"

    assert runfolder.run_job("script", args, job) == "trained"
    assert runfolder.run_job("script", args, job)["epochs"] == 2  # the finished run's metrics
    assert calls == ["new"]


def test_evaluator_keeps_the_best_model_across_a_resume(tmp_path):
    """Moved from tests/test_cloze_lm.py with the Evaluator (issue #18)."""
    import keras

    scores = iter([40.0, 60.0, 50.0, 70.0])
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])

    def evaluator(epoch):  # a new process
        callback = runfolder.Evaluator(lambda model: next(scores), tmp_path, 0)
        callback.set_model(model)
        callback.set_params({"steps": 3})
        callback.on_epoch_begin(epoch)
        return callback

    def evaluate(callback, epoch, weight):  # the model's weight tells which evaluation it was
        model.layers[0].kernel.assign([[weight]])
        return callback.evaluate(epoch, "end")

    def kept():
        model = runfolder.Evaluator(lambda model: next(scores), tmp_path, 0).best_model(
            tmp_path / "model.keras"
        )
        return float(keras.ops.convert_to_numpy(model.layers[0].kernel)[0, 0])

    first = evaluator(0)
    assert [evaluate(first, 0, 1.0), evaluate(first, 1, 2.0)] == [40.0, 60.0]  # Ctrl-C in epoch 3
    resumed = evaluator(1)  # epoch 2 is trained again
    assert evaluate(resumed, 1, 3.0) == 50.0 and kept() == 2.0  # the model that scored 60 is kept
    assert resumed.state["log"][1]["interrupted"] and "interrupted" not in resumed.state["log"][0]
    assert evaluate(resumed, 2, 4.0) == 70.0 and kept() == 4.0
    assert [p.name for p in (tmp_path / "backup").iterdir()] == ["selected-4.keras"]
