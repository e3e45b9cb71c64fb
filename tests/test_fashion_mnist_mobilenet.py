"""fashion_mnist_mobilenet.py: the properties of spec §1 (preprocessing, model, flips, generator) and a smoke run.

The Fashion-MNIST loader itself (counts, corrupted files) is tested in test_common_datasets.py.
"""

import csv
import json
import runpy
import sys

import keras
import numpy as np
import pytest

import fashion_mnist_mobilenet as script
from common import datasets, runfolder, runs


@pytest.fixture(scope="module")
def model_56():
    return script.build_model(56, weights="none")[0]


@pytest.fixture(scope="module")
def real_images(shared_data):
    (x_train, y_train), _ = datasets.load_fashion_mnist(shared_data / "fashion-mnist")
    return x_train, y_train


def test_preprocess_gives_float32_56x56_in_unit_range():
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    out = script.preprocess(images)
    assert out.shape == (5, 56, 56) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.max() > 0.9  # scaled by 1/255, not left in 0..255 or squashed


def test_preprocess_keeps_a_constant_image_constant():
    for value in (0, 37, 200, 255):
        out = script.preprocess(np.full((2, 28, 28), value, np.uint8))
        np.testing.assert_allclose(out, value / 255.0, atol=1e-7)


def test_preprocess_matches_pillow_bilinear_resize():
    from PIL import Image

    image = np.random.default_rng(1).integers(0, 256, size=(28, 28), dtype=np.uint8)
    expected = (
        np.asarray(Image.fromarray(image).resize((56, 56), Image.BILINEAR), np.float32) / 255.0
    )
    np.testing.assert_array_equal(script.preprocess(image[None])[0], expected)


@pytest.mark.backend
def test_gray_to_rgb_repeats_identical_channels():
    images = np.random.default_rng(2).random((3, 56, 56)).astype(np.float32)
    rgb = keras.ops.convert_to_numpy(script.GrayToRGB()(images))
    assert rgb.shape == (3, 56, 56, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], images)


@pytest.mark.backend
def test_model_outputs_probabilities(model_56):
    images = np.random.default_rng(3).random((4, 56, 56)).astype(np.float32)
    probabilities = keras.ops.convert_to_numpy(model_56(images, training=False))
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.backend
def test_pooled_feature_is_1024(model_56):
    assert model_56.get_layer("mobilenet").output.shape == (None, 1024)


@pytest.mark.backend
def test_parameter_count_is_3239114(model_56):
    assert model_56.count_params() == 3_239_114
    assert all(layer.trainable for layer in model_56.layers)  # the article fine-tunes everything


def test_model_refuses_inputs_below_32():
    with pytest.raises(ValueError, match="at least 32"):
        script.build_model(28, weights="none")


def test_flipped_batches_mirror_the_width_axis_only_and_keep_labels():
    images = np.random.default_rng(4).integers(0, 256, size=(200, 8, 6), dtype=np.uint8)
    labels = np.arange(200)
    batches = script.ImageBatches(images, labels, batch_size=50, flip=True, seed=0)
    flipped = 0
    for index in range(len(batches)):
        batch, batch_labels = batches[index]
        np.testing.assert_array_equal(batch_labels, labels[index * 50 : (index + 1) * 50])
        for image, label in zip(batch, batch_labels):
            original = images[label].astype(np.float32) / 255.0
            if np.array_equal(image, original[:, ::-1]) and not np.array_equal(image, original):
                flipped += 1
            else:
                np.testing.assert_array_equal(image, original)
    assert 60 <= flipped <= 140  # p = 0.5 of 200 draws


def test_flip_fraction_is_one_half_over_many_draws():
    images = np.zeros((20000, 1, 2), np.uint8)
    images[:, 0, 0] = 255  # a flipped image has its bright pixel on the right
    batch, _ = script.ImageBatches(images, np.zeros(20000), batch_size=20000, flip=True, seed=1)[0]
    assert abs(batch[:, 0, 1].mean() - 0.5) < 0.02


def test_generator_yields_batches_of_100_at_56x56():
    images = np.zeros((250, 56, 56), np.uint8)
    batches = script.ImageBatches(images, np.zeros(250), batch_size=100, shuffle=True, flip=True)
    assert len(batches) == 3
    assert batches[0][0].shape == (100, 56, 56) and batches[0][0].dtype == np.float32
    assert batches[2][0].shape == (50, 56, 56)  # the last partial batch, as the article's generator


def test_600_steps_cover_60000_samples_once_per_epoch():
    labels = np.arange(60000)
    batches = script.ImageBatches(
        np.zeros((60000, 1, 1), np.uint8), labels, batch_size=100, shuffle=True, seed=5
    )
    assert len(batches) == 600
    epochs = []
    for _ in range(2):
        seen = np.concatenate([batches[index][1] for index in range(len(batches))])
        np.testing.assert_array_equal(
            np.sort(seen), labels
        )  # a permutation: no duplicates, nothing missed
        epochs.append(seen)
        batches.on_epoch_end()
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every pass


@pytest.mark.backend
def test_training_steps_on_256_real_images_lower_the_loss(real_images):
    x_train, y_train = real_images
    keras.utils.set_random_seed(0)
    model, _ = script.build_model(32, weights="none")
    images, labels = script.preprocess(x_train[:256], 32), y_train[:256]
    losses = [
        float(model.train_on_batch(images[start : start + 128], labels[start : start + 128])[0])
        for _ in range(3)
        for start in (0, 128)
    ]  # three passes, two steps each
    assert np.mean(losses[-2:]) < 0.85 * np.mean(losses[:2])


def tiny_classifier():
    """A stand-in for MobileNet where the property is about the training loop, not the model."""
    inputs = keras.Input((8, 8))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class RecordEpochs(keras.callbacks.Callback):
    def __init__(self, interrupt_at=None):
        super().__init__()
        self.started, self.interrupt_at = [], interrupt_at

    def on_epoch_begin(self, epoch, logs=None):
        self.started.append(epoch)
        if epoch == self.interrupt_at:
            raise KeyboardInterrupt  # what Ctrl-C raises


def history_epochs(path):
    with open(path, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.mark.backend
def test_interrupted_training_resumes_after_the_last_epoch_and_keeps_the_best(tmp_path):
    rng = np.random.default_rng(6)
    batches = script.ImageBatches(
        rng.integers(0, 256, (64, 8, 8), dtype=np.uint8),
        rng.integers(0, 10, 64),
        batch_size=32,
        shuffle=True,
    )
    first = RecordEpochs(interrupt_at=1)
    with pytest.raises(KeyboardInterrupt):
        script.train(tiny_classifier(), batches, batches, 3, tmp_path, [first])
    assert history_epochs(tmp_path / "history.csv") == [0]
    second, model = RecordEpochs(), tiny_classifier()  # a new process: a new model, the same folder
    history, best = script.train(model, batches, batches, 3, tmp_path, [second])
    assert first.started == [0, 1] and second.started == [1, 2]
    assert history_epochs(tmp_path / "history.csv") == [0, 1, 2]  # no epoch twice
    assert best == int(np.argmax(history["val_accuracy"]))
    loss, accuracy = model.evaluate(batches, verbose=0)
    kept = history["val_loss"][best], history["val_accuracy"][best]
    assert (loss, accuracy) == pytest.approx(kept, rel=1e-4)  # the model holds the best epoch
    third = RecordEpochs()  # a crash after the last epoch (during evaluation) does not retrain
    history_again, _ = script.train(tiny_classifier(), batches, batches, 3, tmp_path, [third])
    assert third.started == [] and history_again == history


def interrupted_fit(*data, callbacks=(), **options):
    """runfolder.fit with a Ctrl-C at the start of the second epoch."""
    return REAL_FIT(*data, callbacks=[*callbacks, RecordEpochs(interrupt_at=1)], **options)


REAL_FIT = runfolder.fit
QUICK_RUN = [
    "--quick",
    "--alpha",
    "0.25",
    "--limit",
    "200",
    "--test-limit",
    "100",
    "--epochs",
    "2",
    "--weights",
    "none",
]


@pytest.fixture(scope="module")
def finished_run(shared_data, tmp_path_factory):
    """A --quick run on 200 images, interrupted (Ctrl-C) as epoch 2 starts, then run to the end."""
    out = tmp_path_factory.mktemp("fashion") / "run"
    argv = ["--data", str(shared_data / "fashion-mnist"), *QUICK_RUN, "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runfolder, "fit", interrupted_fit)
        with pytest.raises(KeyboardInterrupt):
            script.main(argv)
    interrupted = history_epochs(out / "history.csv")
    return out, argv, script.main(argv), interrupted


def test_main_smoke_run_resumes_and_writes_loadable_outputs(finished_run):
    out, _, metrics, interrupted = finished_run
    for name in (
        "model.keras",
        "metrics.json",
        "history.csv",
        "learning_curves.png",
        "confusion_matrix.png",
    ):
        assert (out / name).is_file(), name
    assert not (out / "backup").exists()
    assert interrupted == [0] and history_epochs(out / "history.csv") == [0, 1]  # no epoch twice
    written = json.loads((out / "metrics.json").read_text())
    for key in (
        "validation_accuracy",
        "test_accuracy",
        "epochs",
        "weights",
        "seconds_per_epoch",
        "images_per_second",
        "environment",
    ):
        assert key in written, key
    assert written["script"] == script.SCRIPT_NAME
    assert written["weights"] == "none" and written["epochs"] == 2 and written["test_images"] == 100
    assert written["test_accuracy"] == metrics["test_accuracy"]
    assert np.sum(written["confusion_matrix"]) == 100
    validation = runs.read_history(out / "history.csv")["val_accuracy"]
    assert written["best_epoch"] == int(np.argmax(validation)) + 1
    assert written["validation_accuracy"] == pytest.approx(max(validation))
    model = keras.saving.load_model(out / "model.keras")
    assert keras.ops.convert_to_numpy(model(np.zeros((2, 32, 32), np.float32))).shape == (2, 10)


def test_a_finished_run_is_reported_and_not_trained_again(finished_run, monkeypatch, capsys):
    out, argv, _, _ = finished_run
    before = (out / "metrics.json").stat().st_mtime_ns
    monkeypatch.setattr(datasets, "load_fashion_mnist", None)  # calling any of these would fail
    for name in ("build_model", "train"):
        monkeypatch.setattr(script, name, None)
    metrics = script.main(argv)
    assert "holds a finished run" in capsys.readouterr().out
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert (out / "metrics.json").stat().st_mtime_ns == before


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "load_fashion_mnist", interrupt)
    monkeypatch.setattr(sys, "argv", ["fashion_mnist_mobilenet.py", "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as raised:
        runpy.run_path(script.__file__, run_name="__main__")  # the script as a command
    assert raised.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted; rerun the same command to resume"


def flipped_gz(tmp_path, shared_data, position):
    """A copy of the data folder whose test labels have one bit flipped."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in sorted(p.name for p in (shared_data / "fashion-mnist").glob("*.gz")):
        (folder / name).symlink_to(shared_data / "fashion-mnist" / name)
    target = folder / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[position] ^= 0x10  # at 200: zlib.error (a bad deflate stream); at 2574: a CRC mismatch
    target.unlink()
    target.write_bytes(bytes(data))
    return ["--data", str(folder)]


def another_scripts_run(tmp_path, shared_data):
    runfolder.open_run("captcha_xception", tmp_path / "run", {}).begin()
    return ["--out", str(tmp_path / "run")]


def foreign_files(tmp_path, shared_data):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    return ["--out", str(tmp_path / "run")]


def out_under_a_file(tmp_path, shared_data):
    (tmp_path / "file").write_text("x")
    return ["--out", str(tmp_path / "file" / "run")]


LABELS = "t10k-labels-idx1-ubyte.gz"
BAD_INPUTS = [  # (case, extra flags or a function making them, message)
    ("out under a file", out_under_a_file, "file, not a folder"),
    ("out of another script", another_scripts_run, "a run of captcha_xception, not of fashion"),
    ("out with foreign files", foreign_files, "holds files but no run.json"),
    ("changed settings", "finished", r"other settings: --epochs 2 \(now 3\)"),
    ("bit-flipped gz (deflate)", lambda t, s: flipped_gz(t, s, 200), f"{LABELS}: not a readable"),
    ("bit-flipped gz (crc)", lambda t, s: flipped_gz(t, s, 2574), f"{LABELS}: not a readable"),
    ("missing data folder", lambda t, s: ["--data", str(t / "none")], "--data .*not a folder"),
    ("weights: a model file", "model.keras", "not a weights file for this MobileNet"),
    ("weights: missing file", ["--weights", "missing.h5"], "--weights missing.h5: no such file"),
    ("size below 32", ["--size", "28"], "at least 32"),
    ("epochs 0", ["--epochs", "0"], "--epochs: 0 is not a positive integer"),
    ("batch size -1", ["--batch-size", "-1"], "--batch-size: -1 is not a positive integer"),
    ("learning rate 0", ["--learning-rate", "0"], "--learning-rate: 0 is not a positive number"),
    ("alpha 0", ["--alpha", "0"], "--alpha: 0 is not a positive number"),
    ("patience 0", ["--patience", "0"], "--patience: 0 is not a positive integer"),
    ("limit 0", ["--limit", "0"], "--limit: 0 is not a positive integer"),
    ("limit without a validation split", ["--limit", "10"], "--limit 10: too few images"),
    ("test limit below a class each", ["--test-limit", "5"], "at least 10 images"),
    ("devices x", ["--devices", "x"], "give a positive number or 'all'"),
]


@pytest.mark.parametrize("case, flags, message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line_and_touches_nothing(
    case, flags, message, tmp_path, shared_data, refuses, request
):
    argv = ["--data", str(shared_data / "fashion-mnist"), *QUICK_RUN, "--out", str(tmp_path / "r")]
    untouched = tmp_path
    if flags == "finished":  # the finished run, rerun with another --epochs
        out, argv, _, _ = request.getfixturevalue("finished_run")
        flags, untouched = ["--epochs", "3"], out
    elif flags == "model.keras":  # a whole model where backbone weights belong
        flags = ["--weights", str(request.getfixturevalue("finished_run")[0] / "model.keras")]
    elif callable(flags):
        flags = flags(tmp_path, shared_data)
    refuses(lambda: script.main(argv + flags), match=message, untouched=untouched)
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ real ImageNet weights (alpha 0.25, issue #14)
@pytest.fixture(scope="module")
def imagenet_file(shared_data):
    path = shared_data / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.mark.parametrize("size", [56, 32])
def test_real_imagenet_file_loads_at_alpha_025(imagenet_file, size):
    import h5py

    model, used = script.build_model(size, weights=str(imagenet_file), alpha=0.25)
    backbone = model.get_layer("mobilenet")
    assert used == str(imagenet_file) and backbone.count_params() == 218_544
    assert model.count_params() == 218_544 + 256 * 10 + 10
    with h5py.File(imagenet_file, "r") as stored:  # Keras 2.0.4's layout: layer / layer / variable
        kernel = stored["conv1"]["conv1"]["kernel:0"][()]
        pointwise = stored["conv_pw_13"]["conv_pw_13"]["kernel:0"][()]
    np.testing.assert_array_equal(backbone.get_layer("conv1").kernel.numpy(), kernel)
    np.testing.assert_array_equal(backbone.get_layer("conv_pw_13").kernel.numpy(), pointwise)
    random_init = script.build_model(size, weights="none", alpha=0.25)[0].get_layer("mobilenet")
    assert not np.allclose(random_init.get_layer("conv1").kernel.numpy(), kernel)
    assert (
        np.abs(kernel).mean() > 1.5 * np.abs(random_init.get_layer("conv1").kernel.numpy()).mean()
    )


def test_alpha_sets_the_width_of_the_random_backbone():
    model, used = script.build_model(32, weights="none", alpha=0.25)
    assert used == "none" and model.get_layer("mobilenet").output.shape[-1] == 256


def _truncated(path, tmp_path):
    data = path.read_bytes()
    (tmp_path / "truncated.h5").write_bytes(data[: len(data) // 2])
    return tmp_path / "truncated.h5"


def _another_models_weights(path, tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    other.save_weights(tmp_path / "other.weights.h5")
    return tmp_path / "other.weights.h5"


def _text_file(path, tmp_path):
    (tmp_path / "notes.h5").write_text("not HDF5")
    return tmp_path / "notes.h5"


@pytest.mark.parametrize(
    "make_file, alpha",
    [
        (lambda path, tmp_path: path, "0.5"),  # the right file for another width
        (_text_file, "0.25"),
        (_truncated, "0.25"),
        (_another_models_weights, "0.25"),
    ],
)
def test_a_wrong_weights_file_is_one_line_and_writes_nothing(
    imagenet_file, shared_data, tmp_path, capsys, make_file, alpha
):
    weights = make_file(imagenet_file, tmp_path)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as raised:
        script.main(
            [
                "--data",
                str(shared_data / "fashion-mnist"),
                "--alpha",
                alpha,
                "--weights",
                str(weights),
                "--limit",
                "100",
                "--test-limit",
                "20",
                "--out",
                str(out),
            ]
        )
    message = str(raised.value)
    assert message.startswith(f"error: --weights {weights}: not a weights file for this MobileNet")
    assert f"alpha {float(alpha)}" in message and "\n" not in message
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], {"alpha": 1.0, "patience": None}),
        (["--alpha", "0.25", "--patience", "10"], {"alpha": 0.25, "patience": 10}),
        (["--quick", "--alpha", "0.5"], {"alpha": 0.5, "size": 32}),
    ],
)
def test_alpha_and_patience_flags(flags, expected):
    args = script.parse_arguments(flags)
    assert {name: getattr(args, name) for name in expected} == expected


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--quick"], {"size": 32, "epochs": 2, "batch_size": 64, "schedule": "cosine"}),
        (["--quick", "--epochs", "3"], {"epochs": 3, "size": 32}),  # a flag given always wins
        (["--quick", "--size", "56", "--batch-size", "100"], {"size": 56, "batch_size": 100}),
        (["--quick", "--learning-rate", "0.01"], {"learning_rate": 0.01, "schedule": "cosine"}),
        (["--quick", "--flip"], {"batch_size": 64}),
        (["--flip"], {"batch_size": 100, "size": 56, "schedule": "constant"}),
        (["train", "--flip", "--batch-size", "10"], {"batch_size": 10, "command": "train"}),
    ],
)
def test_quick_changes_defaults_only(flags, expected):
    args = script.parse_arguments(flags)
    assert {name: getattr(args, name) for name in expected} == expected


def test_patience_stops_training_and_history_keeps_seconds(tmp_path):
    rng = np.random.default_rng(7)
    batches = script.ImageBatches(
        rng.integers(0, 256, (32, 8, 8), dtype=np.uint8), rng.integers(0, 10, 32), batch_size=16
    )
    model = tiny_classifier()
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history, best = script.train(model, batches, batches, 10, tmp_path, patience=2)  # no learning
    assert len(history["val_accuracy"]) == 3  # the first epoch, then 2 without a better one
    assert len(history["seconds"]) == 3 and all(seconds > 0 for seconds in history["seconds"])
    assert best == 0 and history_epochs(tmp_path / "history.csv") == [0, 1, 2]


# ------------------------------------------------ default recipe, mixed precision, several devices (issue #19)
@pytest.mark.recipe
@pytest.mark.backend
def test_default_recipe_trains_evaluates_and_writes_on_tiny_data(shared_data, tmp_path):
    """MobileNet α 1 at 56², batches of 64, constant Adam: two training batches (64 + 6), not --quick."""
    metrics = script.main(
        [
            "--data",
            str(shared_data / "fashion-mnist"),
            "--limit",
            "80",
            "--test-limit",
            "20",
            "--epochs",
            "1",
            "--weights",
            "none",
            "--out",
            str(tmp_path),
        ]
    )
    assert (metrics["size"], metrics["alpha"], metrics["batch_size"], metrics["schedule"]) == (
        56,
        1.0,
        64,
        "constant",
    )
    assert (
        metrics["devices"] == 1
        and metrics["train_images"] == 70
        and np.sum(metrics["confusion_matrix"]) == 20
    )
    model = keras.saving.load_model(tmp_path / "model.keras")
    assert model.count_params() == 3_239_114 and model.input_shape == (None, 56, 56)


@pytest.mark.backend
def test_mixed_precision_trains_in_bfloat16_with_float32_probabilities():
    from common import devices

    with devices.placement(1, mixed_precision=True):
        keras.utils.set_random_seed(0)
        model, _ = script.build_model(32, alpha=0.25)
        images, labels = np.random.default_rng(0).random((8, 32, 32), np.float32), np.arange(8)
        loss = float(model.train_on_batch(images, labels)[0])
        probabilities = model(images)
    assert model.get_layer("mobilenet").get_layer("conv1").compute_dtype == "bfloat16"
    assert keras.backend.standardize_dtype(probabilities.dtype) == "float32" and np.isfinite(loss)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(probabilities).sum(axis=1), 1.0, atol=1e-5
    )


def test_devices_that_are_not_there_stop_before_anything_is_written(tmp_path):
    message = r"^error: --devices 64: (only \d|data-parallel training needs)"  # torch: no engine
    with pytest.raises(SystemExit, match=message):
        script.main(["--devices", "64", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_epochs_is_only_the_stopping_point_with_a_constant_learning_rate(monkeypatch):
    """A constant-rate run may be stopped at the epochs it reached and evaluated; a cosine schedule
    spans --epochs, so changing it on a resume is refused like any other setting."""
    runtime = {}

    def run_job(script, args, job, stop_only=()):
        runtime[args.schedule] = stop_only

    monkeypatch.setattr(script.runfolder, "run_job", run_job)
    script.main(["--epochs", "3"])
    script.main(["--schedule", "cosine"])
    assert runtime == {"constant": ("epochs",), "cosine": ()}
