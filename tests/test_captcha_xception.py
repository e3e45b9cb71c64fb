"""captcha_xception.py: the article's shapes and counts, the metric, the CTC head, data handling, a smoke run."""

import argparse
import csv
import json
import runpy
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import captcha_xception as script
from common import captchas, runfolder, runs


# ---------------------------------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def xception_model():
    return script.build_model("xception", weights="none")[0]


def test_xception_has_four_outputs_of_26_classes_and_21074576_parameters(xception_model):
    outputs = xception_model.predict(np.zeros((2, 50, 120, 3), np.float32), verbose=0)
    assert len(outputs) == 4 and all(output.shape == (2, 26) for output in outputs)
    assert xception_model.count_params() == 21_074_576


def test_xception_refuses_input_shape_50x120_but_builds_from_input_tensor(xception_model):
    with pytest.raises(ValueError):
        keras.applications.Xception(weights=None, include_top=False, input_shape=(50, 120, 3))
    # the script's model is built with input_tensor=Input((50, 120, 3)), which skips the 71-pixel check
    assert xception_model.input_shape == (None, 50, 120, 3)
    assert xception_model.get_layer("head_dropout_1").input.shape == (None, 2048)  # pooled feature


def test_the_four_heads_are_independent_layers(xception_model):
    heads = [xception_model.get_layer(f"char_{k + 1}") for k in range(4)]
    assert len({id(head.kernel) for head in heads}) == 4
    images = np.random.default_rng(0).uniform(0, 255, (2, 50, 120, 3)).astype(np.float32)
    before = xception_model.predict(images, verbose=0)
    original = heads[0].kernel.numpy()
    heads[0].kernel.assign(np.zeros_like(original))
    after = xception_model.predict(images, verbose=0)
    heads[0].kernel.assign(original)
    assert not np.allclose(before[0], after[0])
    for k in (1, 2, 3):
        np.testing.assert_allclose(before[k], after[k], rtol=1e-5, atol=1e-6)


@pytest.mark.backend
def test_cnn2016_has_48712_parameters_and_a_192_d_feature():
    model, _ = script.build_model("cnn2016")
    assert script.INPUT_SIZE["cnn2016"] == (53, 129)
    assert model.count_params() == 48_712
    assert model.get_layer("flatten").output.shape == (None, 192)
    outputs = model.predict(np.zeros((3, 53, 129, 3), np.float32), verbose=0)
    assert [output.shape for output in outputs] == [(3, 26)] * 4


# ---------------------------------------------------------------------------------------------------- metric
def test_full_string_accuracy_counts_only_all_correct():
    accuracy, positions = script.string_accuracy(
        [[0, 1, 2, 3], [0, 1, 2, 4]], [[0, 1, 2, 3], [0, 1, 2, 3]]
    )
    assert accuracy == 0.5
    np.testing.assert_array_equal(positions, [1, 1, 1, 0.5])


def test_article_2016_independence_estimate_is_about_041():
    assert np.prod([0.89, 0.72, 0.73, 0.87]) == pytest.approx(0.4070, abs=5e-5)


# ------------------------------------------------------------------------------------------------------- CTC
@pytest.mark.backend
def test_ctc_greedy_decode_merges_repeats_and_drops_blanks():
    blank = 26
    path = [0, 0, blank, 1, 1, blank, 1, 25]  # "aa_bb_bz" → a, b, b, z
    probabilities = np.full((1, len(path), 27), 0.01, np.float32)
    probabilities[0, np.arange(len(path)), path] = 0.9
    decoded = script.ctc_greedy_decode(probabilities)
    assert captchas.decode_label(decoded[0]) == "abbz"
    assert decoded.shape == (1, len(path)) and np.all(decoded[0, 4:] == captchas.PAD)


@pytest.mark.backend
def test_ctc_loss_is_lower_for_the_labels_the_probabilities_spell():
    blank = 26
    path = [0, blank, 1, blank, 2, blank, 3, 3]
    probabilities = np.full((1, len(path), 27), 0.01, np.float32)
    probabilities[0, np.arange(len(path)), path] = 0.74
    right = keras.ops.convert_to_numpy(script.ctc_loss(np.array([[0, 1, 2, 3]]), probabilities))
    wrong = keras.ops.convert_to_numpy(script.ctc_loss(np.array([[0, 1, 2, 4]]), probabilities))
    shorter = keras.ops.convert_to_numpy(script.ctc_loss(np.array([[0, 1, 2, -1]]), probabilities))
    assert np.isfinite(right).all() and right[0] < wrong[0] and right[0] < shorter[0]


@pytest.mark.backend
def test_ctc_head_trains_and_decodes_on_this_backend():
    model, _ = script.build_model("small", head="ctc", learning_rate=1e-3)
    assert model.output.shape == (None, 15, 27)  # width 120 / 8 time steps, 26 letters + blank
    images = np.random.default_rng(0).uniform(0, 255, (4, 50, 120, 3)).astype(np.float32)
    labels = np.array([[0, 1, 2, 3], [4, 5, 6, -1], [7, 7, 8, 9], [1, 2, -1, -1]])
    losses = [float(np.asarray(model.train_on_batch(images, labels)).ravel()[0]) for _ in range(2)]
    assert np.isfinite(losses).all()
    assert script.predict_labels(model, images.astype(np.uint8)).shape == (4, 15)


# ------------------------------------------------------------------------------------------------------ data
def write_captcha(path, text):
    image, _ = captchas.generate_captchas(1, seed=len(text), workers=1)
    Image.fromarray(image[0]).resize((129, 53)).save(path)


def test_variable_length_needs_the_ctc_head():
    with pytest.raises(SystemExit, match="needs --head ctc"):
        script.main(["--length", "4-6", "--quick"])
    assert script.parse_length("4-6") == (4, 6)
    with pytest.raises(argparse.ArgumentTypeError):
        script.parse_length("6-4")


# ------------------------------------------------------------------------- smoke run, resume, rerun
def history_epochs(path):
    with open(path, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


REAL_FIT = runfolder.fit
RUN = "--recipe cpu --train-size 64 --validation-size 16 --test-size 16 --epochs 2 --batch-size 32 --workers 1".split()


OUTPUTS = "model.keras metrics.json history.csv learning_curves.png test_predictions.png".split()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, interrupt_at):
    """--recipe cpu (the small CNN, cosine decay) on 64 captchas, interrupted (Ctrl-C) as epoch 2
    starts, its test-set cache emptied, then run to the end."""

    def interrupted_fit(*data, callbacks=(), **options):
        return REAL_FIT(*data, callbacks=[*callbacks, interrupt_at(1)], **options)

    out = tmp_path_factory.mktemp("captcha") / "run"
    argv = [*RUN, "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runfolder, "fit", interrupted_fit)
        with pytest.raises(KeyboardInterrupt):
            script.main(argv)
    interrupted = history_epochs(out / "history.csv")
    next((out / "captchas").glob("test-*.npz")).write_bytes(b"")  # a zero-byte cache: made again
    return out, argv, script.main(argv), interrupted


def test_main_smoke_run_resumes_and_keeps_the_best_epoch(finished_run):
    out, _, metrics, interrupted = finished_run
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert not (out / "backup").exists()
    assert interrupted == [0] and history_epochs(out / "history.csv") == [0, 1]  # no epoch twice
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["script"] == script.SCRIPT_NAME
    assert stored["test_string_accuracy"] == metrics["test_string_accuracy"]
    assert 0 <= metrics["test_string_accuracy"] <= 1
    assert len(stored["test_position_accuracy"]) == 4 and stored["backbone"] == "small"
    caches = sorted((out / "captchas").glob("*.npz"))
    assert len(caches) == 3 and all(path.stat().st_size > 0 for path in caches)
    model = keras.saving.load_model(out / "model.keras")
    assert [output.shape for output in model.outputs] == [(None, 26)] * 4
    history = runs.read_history(out / "history.csv")
    best = int(np.argmax(history["val_string_accuracy"]))
    assert stored["best_epoch"] == best + 1 and len(history["seconds"]) == 2
    with np.load(next((out / "captchas").glob("validation-*.npz"))) as validation:
        predictions = script.predict_labels(model, validation["images"])
        accuracy, _ = script.string_accuracy(predictions, validation["labels"])
    assert accuracy == pytest.approx(history["val_string_accuracy"][best])  # the best epoch's model
    assert accuracy == pytest.approx(stored["validation_string_accuracy"])


def test_cosine_recipe_decays_the_learning_rate_to_zero_over_the_run(finished_run):
    out, _, metrics, _ = finished_run
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["recipe"] == "cpu" and stored["schedule"] == "cosine" and metrics["epochs"] == 2
    assert stored["wall_seconds"] > 0 and stored["seconds_per_epoch"] > 0
    model = keras.saving.load_model(out / "model.keras", compile=True)
    schedule = model.optimizer._learning_rate  # the schedule (learning_rate is its current value)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.decay_steps == 4  # 2 epochs of 2 batches: the batches fit was fed
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(4)) == pytest.approx(0.0, abs=1e-9)
    # 2 batches an epoch: the resumed epoch continued the schedule where the first one left it
    assert int(model.optimizer.iterations) == 2 * stored["best_epoch"]


def test_predict_reads_images_from_the_run_folder_or_its_model(finished_run, tmp_path, capsys):
    out = finished_run[0]
    images = [tmp_path / "one.png", tmp_path / "two.jpg"]
    write_captcha(images[0], "abcd")
    write_captcha(images[1], "wxyz")
    capsys.readouterr()
    texts = script.main(["predict", "--model", str(out / "model.keras"), *map(str, images)])
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(texts) == 2 and all(
        len(text) == 4 and set(text) <= set(captchas.CHARSET) for text in texts
    )
    assert printed == [f"{path}\t{text}" for path, text in zip(images, texts)]
    assert script.main(["predict", "--model", str(out), *map(str, images)]) == texts


def test_a_finished_run_is_reported_and_not_trained_again(finished_run, monkeypatch, capsys):
    out, argv, _, _ = finished_run
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    for module, name in (
        (captchas, "generate_captchas"),
        (script, "build_model"),
        (script, "train"),
    ):
        monkeypatch.setattr(module, name, None)  # calling any of them would fail
    metrics = script.main(argv)
    assert "holds a finished run" in capsys.readouterr().out
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "seed_everything", interrupt)
    argv = ["captcha_xception.py", "--quick", "--out", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as raised:
        runpy.run_path(script.__file__, run_name="__main__")  # the script as a command
    assert raised.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted; rerun the same command to resume"
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------------------- bad input
def tiny_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])


def dogs_run(tmp_path):
    """A finished run of another script, with a real model.keras."""
    run = runfolder.open_run("dogs_finetune", tmp_path / "dogs", {})
    run.begin()
    tiny_model().save(run.path / "model.keras")
    run.finish({"accuracy": 0.5})
    return run.path


def captcha_run(tmp_path, model_text=None):
    """A captcha run folder begun but not trained (no model.keras), or with `model_text` as one."""
    run = runfolder.open_run(script.SCRIPT_NAME, tmp_path / "captcha", {})
    run.begin()
    if model_text is not None:
        (run.path / "model.keras").write_text(model_text)
    return run.path


def text_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    return tmp_path / "notes.txt"


def weights_file(tmp_path):
    path = tmp_path / "captcha.weights.h5"
    tiny_model().save_weights(path)
    return path


def loose_model(tmp_path):
    (tmp_path / "loose").mkdir()
    tiny_model().save(tmp_path / "loose" / "model.keras")
    return tmp_path / "loose" / "model.keras"


def unmarked_run(tmp_path):
    """A folder with metrics.json but no script marker (made before runs were marked)."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "metrics.json").write_text('{"test_string_accuracy": 0.5}')
    (tmp_path / "old" / "model.keras").write_text("x")
    return tmp_path / "old"


PREDICT_BAD_INPUTS = [  # (case, a function making the --model path, message)
    (
        "another script's model.keras",
        lambda t: dogs_run(t) / "model.keras",
        "a run of dogs_finetune, not of captcha_xception",
    ),
    ("another script's run folder", dogs_run, "a run of dogs_finetune, not of captcha_xception"),
    ("a text file", text_file, "not a run folder of captcha_xception"),
    ("a weights file", weights_file, "not a run folder of captcha_xception"),
    ("a model.keras outside a run", loose_model, "not a run folder of captcha_xception"),
    ("a missing file", lambda t: t / "missing.keras", "no such file or folder"),
    ("a run without a model yet", captcha_run, "the run has no model.keras yet"),
    ("a run whose model is not one", lambda t: captcha_run(t, "text"), "cannot load .*model.keras"),
    ("an unmarked run", unmarked_run, "a run of an unknown script"),
]


@pytest.mark.parametrize(
    "case, make_model, message", PREDICT_BAD_INPUTS, ids=[case[0] for case in PREDICT_BAD_INPUTS]
)
def test_predict_refuses_what_is_not_a_model_of_this_script(
    case, make_model, message, tmp_path, refuses
):
    model = make_model(tmp_path)
    refuses(
        lambda: script.main(["predict", "--model", str(model), str(tmp_path / "a.png")]),
        match=message,
        untouched=tmp_path,
    )


def test_predict_refuses_a_file_that_is_not_an_image(finished_run, tmp_path, refuses):
    (tmp_path / "abcd.png").write_text("not an image")
    argv = ["predict", "--model", str(finished_run[0]), str(tmp_path / "abcd.png")]
    refuses(lambda: script.main(argv), match="cannot read an image", untouched=finished_run[0])


def few_images(tmp_path):
    for k, text in enumerate(["abcd", "wxyz", "hell"]):
        write_captcha(tmp_path / f"{k:04d}{text}.jpg", text)
    return ["--data", str(tmp_path)]


def out_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    return ["--out", str(tmp_path / "file" / "run")]


TRAIN_BAD_INPUTS = [  # (case, extra flags or a function making them, message)
    ("out under a file", out_under_a_file, "file, not a folder"),
    ("out of another script", lambda t: ["--out", str(dogs_run(t))], "a run of dogs_finetune, "),
    ("changed settings", "finished", r"other settings: --epochs 2 \(now 3\)"),
    ("data: three images", few_images, "3 usable images are too few"),
    ("data: no images", lambda t: ["--data", str(t)], "no usable labelled captcha images"),
    ("data: missing folder", lambda t: ["--data", str(t / "none")], "--data .*: not a folder"),
    ("epochs 0", ["--epochs", "0"], "--epochs: 0 is not a positive integer"),
    ("batch size -1", ["--batch-size", "-1"], "--batch-size: -1 is not a positive integer"),
    ("learning rate 0", ["--learning-rate", "0"], "--learning-rate: 0 is not a positive number"),
    ("train size 0", ["--train-size", "0"], "--train-size: 0 is not a positive integer"),
    ("test size x", ["--test-size", "x"], "--test-size: 'x' is not a positive integer"),
    ("workers 0", ["--workers", "0"], "--workers: 0 is not a positive integer"),
    ("length 6-4", ["--length", "6-4"], "need 1 <= MIN <= MAX"),
    ("variable length, softmax", ["--length", "4-6"], "needs --head ctc"),
    (
        "variable length, --data",
        lambda t: [*few_images(t), "--head", "ctc", "--length", "4-6"],
        "needs --head ctc and generated captchas",
    ),
    ("repeated charset", ["--charset", "aab"], "without repeated characters"),
    ("quick and another recipe", ["--quick"], "--quick is --recipe quick"),
    ("devices x", ["--devices", "x"], "give a positive number or 'all'"),
]


@pytest.mark.parametrize(
    "case, flags, message", TRAIN_BAD_INPUTS, ids=[case[0] for case in TRAIN_BAD_INPUTS]
)
def test_bad_input_is_one_line_and_touches_nothing(
    case, flags, message, tmp_path, refuses, request
):
    argv, untouched = [*RUN, "--out", str(tmp_path / "r")], tmp_path
    if flags == "finished":  # the finished run, rerun with another --epochs
        out, argv, _, _ = request.getfixturevalue("finished_run")
        flags, untouched = ["--epochs", "3"], out
    elif callable(flags):
        flags = flags(tmp_path)
    refuses(lambda: script.main(argv + flags), match=message, untouched=untouched)
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------- named recipes (issue #14), grammar (#18)
@pytest.mark.parametrize(
    "flags, expected",
    [
        (
            [],
            {
                "backbone": "xception",
                "epochs": 10,
                "batch_size": 100,
                "schedule": "constant",
                "train_size": 90_000,
            },
        ),
        (
            ["--backbone", "cnn2016"],
            {"epochs": 30, "batch_size": 256, "learning_rate": 1e-3, "recipe": None},
        ),
        (
            ["--quick"],
            {
                "backbone": "small",
                "epochs": 4,
                "schedule": "constant",
                "train_size": 30_000,
                "recipe": "quick",
            },
        ),
        (
            ["--quick", "--backbone", "xception"],
            {"backbone": "xception", "epochs": 4, "batch_size": 64, "test_size": 2_000},
        ),
        (
            ["--recipe", "quick"],
            {"backbone": "small", "epochs": 4, "recipe": "quick", "quick": False},
        ),
        (
            ["--recipe", "cpu"],
            {
                "backbone": "small",
                "epochs": 12,
                "batch_size": 64,
                "learning_rate": 1e-3,
                "schedule": "cosine",
                "train_size": 90_000,
                "validation_size": 2_000,
                "test_size": 10_000,
                "recipe": "cpu",
            },
        ),
        (["--recipe", "cpu", "--head", "ctc"], {"backbone": "small", "head": "ctc", "epochs": 12}),
        (
            "--recipe cpu --epochs 3 --schedule constant --backbone xception --train-size 5".split(),
            {
                "backbone": "xception",
                "epochs": 3,
                "schedule": "constant",
                "train_size": 5,
                "batch_size": 64,
            },
        ),
        (
            ["train", "--recipe", "cpu", "--epochs", "12"],
            {"command": "train", "epochs": 12, "schedule": "cosine"},
        ),
    ],
)
def test_recipes_set_defaults_and_explicit_flags_win(flags, expected):
    args = script.parse_arguments(flags)
    assert {name: getattr(args, name) for name in expected} == expected


@pytest.mark.parametrize(
    "flags",
    [
        ["--quick", "--epochs", "3"],
        ["--epochs", "3", "--quick"],
        ["train", "--quick", "--epochs", "3"],
    ],
)
def test_quick_changes_defaults_only_and_the_bare_command_trains(flags):
    args = script.parse_arguments(flags)
    assert (args.command, args.epochs, args.train_size, args.backbone) == (
        "train",
        3,
        30_000,
        "small",
    )
    assert (
        script.parse_arguments(["--quick", "--epochs", "4", "--train-size", "90000"]).train_size
        == 90_000
    )


def test_predict_is_a_verb_with_its_own_flags_listed_in_help(capsys):
    args = script.parse_arguments(["predict", "--model", "run", "a.png", "b.png"])
    assert (args.command, args.model, args.images, args.charset) == (
        "predict",
        "run",
        ["a.png", "b.png"],
        None,
    )
    with pytest.raises(SystemExit) as raised:
        script.parse_arguments(["--help"])
    assert raised.value.code == 0 and "predict: read captchas" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.parse_arguments(
            ["predict", "--quick", "--model", "run", "a.png"]
        )  # not a predict flag


# ------------------------------------------------ default recipe, mixed precision, several devices (issue #19)
@pytest.mark.recipe
@pytest.mark.slow  # about a minute on 2 shared cores (Xception's training step built and compiled); CI: -m recipe
def test_default_recipe_trains_evaluates_and_writes_on_tiny_data(tmp_path):
    """Xception at 50×120 with 4 softmax heads, batches of 100, constant Adam: one batch of generated captchas."""
    flags = "--train-size 6 --validation-size 4 --test-size 5 --epochs 1 --weights none --workers 1"
    metrics = script.main([*flags.split(), "--out", str(tmp_path)])
    assert (metrics["backbone"], metrics["head"], metrics["input_size"], metrics["batch_size"]) == (
        "xception",
        "softmax",
        [50, 120],
        100,
    )
    assert metrics["parameters"] == 21_074_576 and metrics["devices"] == 1
    assert len(metrics["test_position_accuracy"]) == 4
    for name in OUTPUTS:
        assert (tmp_path / name).is_file(), name


def test_ctc_position_accuracy_covers_the_label_positions_not_the_time_steps():
    predictions = np.full(
        (2, 15), captchas.PAD
    )  # the CTC decoder's width: one column per time step
    predictions[:, :4] = [[0, 1, 2, 3], [0, 1, 2, 9]]
    accuracy, positions = script.string_accuracy(predictions, [[0, 1, 2, 3], [0, 1, 2, 3]])
    assert accuracy == 0.5 and positions.tolist() == [1, 1, 1, 0.5]
    extra = predictions.copy()
    extra[0, 4] = (
        7  # a fifth letter read after a 4-letter label makes the string wrong, not a position
    )
    assert script.string_accuracy(extra, [[0, 1, 2, 3], [0, 1, 2, 3]])[0] == 0.0


@pytest.mark.backend
@pytest.mark.parametrize("head", ["softmax", "ctc"])
def test_mixed_precision_trains_in_bfloat16_with_float32_heads_and_loss(head):
    from common import devices

    with devices.placement(1, mixed_precision=True):
        keras.utils.set_random_seed(0)
        model, _ = script.build_model("small", head=head)
        images = np.random.default_rng(0).uniform(0, 255, (4, 50, 120, 3)).astype(np.float32)
        labels = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [7, 7, 8, 9], [1, 2, 3, 4]])
        targets = labels if head == "ctc" else tuple(labels.T)
        loss = float(np.asarray(model.train_on_batch(images, targets)).ravel()[0])
        outputs = model(images)
    assert model.get_layer("conv1").compute_dtype == "bfloat16" and np.isfinite(loss)
    assert {
        keras.backend.standardize_dtype(output.dtype) for output in keras.tree.flatten(outputs)
    } == {"float32"}


def test_devices_that_are_not_there_stop_before_anything_is_written(tmp_path):
    with pytest.raises(
        SystemExit, match=r"^error: --devices 64: (only \d|data-parallel training needs)"
    ):
        script.main(["--quick", "--devices", "64", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
