"""Tests for dogs_finetune.py (kexue.fm/archives/4611) on synthetic images with weights=None; no dog photos needed."""

import csv
import json
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import dogs_finetune as dogs
from common import image_folders


@pytest.fixture(scope="module")
def model_100():
    """The article's model for 100 breeds, at Xception's smallest input (71 px) to keep tests fast."""
    return dogs.build_model(100, image_size=71, weights="none")


def _write_jpeg(path, rng, size=(40, 56), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=size + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
    Image.fromarray(pixels, mode="RGB" if mode == "RGB" else "L").save(path)


# ------------------------------------------------------------------------------------------------- model
@pytest.mark.backend
def test_glu_output_is_linear_times_sigmoid_gate(model_100):
    model, _, backbone, _ = model_100
    images = np.random.default_rng(0).integers(0, 256, (3, 71, 71, 3)).astype("float32")
    probe = keras.Model(
        model.inputs[0], [model.get_layer("glu_linear").input, model.get_layer("glu").output]
    )
    x, glu = (keras.ops.convert_to_numpy(t) for t in probe(images))
    kernel_a, bias_a = (
        keras.ops.convert_to_numpy(w) for w in model.get_layer("glu_linear").weights
    )
    kernel_b, bias_b = (keras.ops.convert_to_numpy(w) for w in model.get_layer("glu_gate").weights)
    expected = (x @ kernel_a + bias_a) / (1 + np.exp(-(x @ kernel_b + bias_b)))
    assert glu.shape == (3, 64)
    np.testing.assert_allclose(glu, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.backend
def test_outputs_are_softmax_l2_auxiliary_with_loss_weights_1_quarter_quarter(model_100):
    model, predict_model, _, _ = model_100
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 71, 71, 3)).astype("float32")
    labels = rng.integers(0, 100, (4, 1)).astype("int32")
    softmax, l2, auxiliary = (keras.ops.convert_to_numpy(t) for t in model([images, labels]))
    assert softmax.shape == (4, 100) and l2.shape == (4, 1) and auxiliary.shape == (4, 100)
    np.testing.assert_allclose(softmax.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(auxiliary.sum(1), 1, atol=1e-5)
    assert [t.shape for t in predict_model(images)] == [(4, 100), (4, 100)]
    dogs.set_trainable(model_100[2], False)
    dogs.compile_model(model, "adam")
    logs = model.evaluate(
        [images, labels], [labels, np.zeros((4, 1)), labels], return_dict=True, verbose=0
    )
    assert logs["loss"] == pytest.approx(
        logs["softmax_loss"] + 0.25 * logs["l2_loss"] + 0.25 * logs["auxiliary_loss"], rel=1e-4
    )


@pytest.mark.backend
def test_stage1_trains_480072_parameters_for_100_classes(model_100):
    model, _, backbone, _ = model_100
    dogs.set_trainable(backbone, False)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 480_072
    assert not backbone.trainable_weights


@pytest.mark.backend
def test_stage2_unfreezes_block13_block14_and_their_residual_only(model_100):
    model, _, backbone, _ = model_100
    dogs.set_trainable(backbone, True)
    trainable = [layer for layer in backbone.layers if layer.trainable_weights]
    named = {
        layer.name for layer in trainable if "block13" in layer.name or "block14" in layer.name
    }
    assert named == {
        layer.name
        for layer in backbone.layers
        if ("block13" in layer.name or "block14" in layer.name) and layer.weights
    }
    residual = [
        layer for layer in trainable if layer.name not in named
    ]  # block13's shortcut Conv2D(1024, 1×1) + BN
    assert sorted(type(layer).__name__ for layer in residual) == ["BatchNormalization", "Conv2D"]
    assert [layer.filters for layer in residual if isinstance(layer, keras.layers.Conv2D)] == [1024]
    added = sum(int(np.prod(w.shape)) for w in backbone.trainable_weights)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 480_072 + added
    dogs.set_trainable(backbone, False)


@pytest.mark.backend
def test_batch_norm_calibration_gives_a_random_backbone_unit_scale_features(model_100):
    _, _, backbone, _ = model_100
    dogs.set_trainable(backbone, False)
    sample = np.random.default_rng(2).integers(0, 256, (16, 71, 71, 3)).astype("uint8")

    def features():
        return keras.ops.convert_to_numpy(
            backbone(sample.astype("float32") / 127.5 - 1, training=False)
        )

    assert features().std() < 1e-3  # a random Xception's features all but vanish
    dogs.calibrate_batch_norm(backbone, sample)
    assert features().std() > 0.05
    assert not any(
        layer.trainable
        for layer in backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )


# ------------------------------------------------------------------------------------------------ batches
def test_alpha_search_picks_one_when_main_head_right_and_auxiliary_random():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    p0 = np.full((500, 10), 0.0999)
    p0[np.arange(500), labels] = 0.1009  # always right, barely
    p1 = np.eye(10)[rng.integers(0, 10, 500)]  # confident and random
    alpha, accuracy, grid = dogs.search_alpha(p0, p1, labels)
    assert len(grid) == 101 and len(dogs.ALPHA_GRID) == 101
    assert dogs.ALPHA_GRID[0] == 0 and dogs.ALPHA_GRID[-1] == 1 and dogs.ALPHA_GRID[1] == 0.01
    assert alpha == 1.0 and accuracy == 1.0


def test_heavy_and_light_augmentation_keep_shape_and_dtype():
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (12, 71, 71, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 4)
    members = [np.flatnonzero(labels == c) for c in range(3)]
    for mode in ("heavy", "light"):
        out = dogs.augment_batch(pool[:6], labels[:6], members, pool, rng, mode, 71)
        assert out.shape == (6, 71, 71, 3) and out.dtype == np.uint8


def test_augmentation_takes_partners_and_backgrounds_from_training_rows_only():
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 200, (12, 71, 71, 3), dtype=np.uint8)
    pool[8:] = 255  # validation rows: not in `members`
    labels = np.repeat(np.arange(2), 6)
    members = [np.array([0, 1, 2, 3]), np.array([4, 5, 6, 7])]
    for _ in range(20):
        out = dogs.augment_batch(pool[:8], labels[:8], members, pool, rng, "heavy", 71)
        assert out.max() < 255


# ------------------------------------------------------------------------------------------------ layouts
def test_data_without_classes_is_one_line(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SystemExit, match="^error: .*no class folders"):
        dogs.main(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "run")])


def test_cache_is_reused_and_epochs_decode_nothing(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    paths = []
    for c in range(3):
        for k in range(4):
            paths.append(tmp_path / f"c{c}" / f"{k}.jpg")
            _write_jpeg(paths[-1], rng)
    calls = []
    real_decode = image_folders.decode_image
    monkeypatch.setattr(
        image_folders,
        "decode_image",
        lambda path, size: calls.append(path) or real_decode(path, size),
    )
    images, _, _ = image_folders.build_cache(paths, 71, tmp_path / "cache")
    assert len(calls) == 12
    images, _, _ = image_folders.build_cache(
        paths, 71, tmp_path / "cache"
    )  # a rerun: same files, same size
    batches = dogs.DogBatches(
        images,
        np.repeat(np.arange(3), 4),
        np.arange(12),
        "heavy",
        steps=3,
        seed=0,
        classes_per_batch=3,
    )
    for _ in range(2):
        for step in range(len(batches)):
            (x, y), targets = batches[step]
            assert x.shape == (6, 71, 71, 3) and y.shape == (6, 1)
        batches.on_epoch_end()
    assert len(calls) == 12 and isinstance(images, np.memmap)


# ------------------------------------------------------------------------------- runs end to end
@pytest.fixture(scope="module")
def resumed_quick_run(tmp_path_factory):
    """`main --quick --pseudo-label` stopped by Ctrl-C twice, then run to the end, same command each
    time: first as stage 2's second epoch starts, then in stage 2's validation (after its epochs).
    """
    folder = tmp_path_factory.mktemp("dogs")
    out, unlabelled = folder / "run", folder / "unlabelled"
    unlabelled.mkdir()
    pool = image_folders.write_synthetic_classes(
        folder / "pool", seed=2017
    )  # the images --quick will draw
    for path in sorted((pool / "Images").rglob("*_20.jpg"))[:4]:
        shutil.copy(path, unlabelled / path.name)
    flags = [
        "--quick",
        "--out",
        str(out),
        "--weights",
        "none",
        "--epochs",
        "2",
        "--steps-per-epoch",
        "1",
        "--batch-size",
        "8",
        "--workers",
        "2",
        "--pseudo-label",
        str(unlabelled),
        "--pseudo-threshold",
        "0.01",
    ]
    epochs_run, progress = [], []
    real_fit = dogs.runfolder.fit

    class Watch(keras.callbacks.Callback):
        def __init__(self, stage, stop_at):
            super().__init__()
            self.stage, self.stop_at = stage, stop_at

        def on_epoch_begin(self, epoch, logs=None):
            if (self.stage, epoch) == self.stop_at:
                raise KeyboardInterrupt

        def on_epoch_end(self, epoch, logs=None):
            epochs_run.append((self.stage, epoch))

    def fit_stopping_at(stop_at):
        return lambda model, *data, name="", **options: real_fit(
            model, *data, name=name, callbacks=[Watch(name, stop_at)], **options
        )

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dogs.runfolder, "fit", fit_stopping_at(("stage2", 1)))
        with pytest.raises(KeyboardInterrupt):
            dogs.main(flags)
        progress.append(json.loads((out / "progress.json").read_text()))
        patch.setattr(dogs.runfolder, "fit", fit_stopping_at(None))
        with patch.context() as validation:
            validation.setattr(dogs, "predict_heads", ctrl_c)  # stage 2 trained, not validated
            with pytest.raises(KeyboardInterrupt):
                dogs.main(flags)
        progress.append(json.loads((out / "progress.json").read_text()))
        history_stage2 = history_epochs(out / "history_stage2.csv")
        metrics = dogs.main(flags)
    return out, flags, metrics, progress, epochs_run, history_stage2


def history_epochs(path):
    with open(path) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_resume_skips_finished_stages_and_continues_the_interrupted_epoch(resumed_quick_run):
    out, _, _, progress, epochs_run, history_stage2 = resumed_quick_run
    assert [record["finished"] for record in progress] == [["stage1"], ["stage1"]]
    assert history_stage2 == [0, 1]  # stage 2 had trained when its validation was interrupted
    assert epochs_run == [
        ("stage1", 0),
        ("stage1", 1),
        ("stage2", 0),  # run 1: Ctrl-C in stage 2
        ("stage2", 1),  # run 2: Ctrl-C in stage 2's validation
        ("stage3", 0),
        ("stage3", 1),
        ("pseudo", 0),
        ("pseudo", 1),
    ]  # run 3
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["stage"], int(row["epoch"])) for row in rows] == [
        (stage, epoch) for stage in ("stage1", "stage2", "stage3", "pseudo") for epoch in (0, 1)
    ]
    assert not list(out.glob("backup*"))  # the resume state goes with the finished run


def test_finished_run_rerun_reports_and_trains_nothing(resumed_quick_run, capsys):
    out, flags, metrics, _, _, _ = resumed_quick_run
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    again = dogs.main(flags)
    assert again["test"] == metrics["test"] and again["script"] == "dogs_finetune"
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before
    assert "holds a finished run of dogs_finetune" in capsys.readouterr().out


def test_quick_run_writes_outputs_that_load(resumed_quick_run):
    out, flags, _, _, _, _ = resumed_quick_run
    for name in (
        "model.keras",
        "metrics.json",
        "classes.json",
        "history.csv",
        "learning_curves.png",
        "per_class.csv",
        "confused_pairs.png",
        "run.json",
    ):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["synthetic"] is True and saved["layout"] == "stanford"
    assert saved["test"]["images"] == 64
    assert set(saved["stages"]) == {"stage1", "stage2", "stage3", "pseudo"}
    assert saved["pseudo_label"] == {
        "folder": flags[flags.index("--pseudo-label") + 1],
        "threshold": 0.01,
        "added": 4,
        "candidates": 4,
    }
    assert 0 <= saved["validation"]["alpha"] <= 1
    with open(out / "per_class.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 8


def test_predict_writes_top5_breeds_with_probabilities(resumed_quick_run, tmp_path):
    out, flags, _, _, _, _ = resumed_quick_run
    unlabelled = flags[flags.index("--pseudo-label") + 1]
    dogs.main(
        [
            "predict",
            "--model",
            str(out / "model.keras"),
            unlabelled,
            "--csv",
            str(tmp_path / "top5.csv"),
        ]
    )
    with open(tmp_path / "top5.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and rows[0]["breed_1"].startswith("synthetic_breed_")
    probabilities = [float(rows[0][f"probability_{k}"]) for k in range(1, 6)]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-3


def fake_run(folder, script="dogs_finetune", classes=None, model=b"not a zip"):
    """A run folder with run.json, classes.json and model.keras as given (nothing trained)."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"script": script, "settings": {}}))
    classes = classes or {"classes": ["a", "b"], "alpha": 0.5, "image_size": 71}
    (folder / "classes.json").write_text(json.dumps(classes))
    (folder / "model.keras").write_bytes(model)
    return folder


NEW, IMAGE = ["--out", "NEW"], "IMAGES/a"
POSITIVE = r"0 is not a positive integer"
FOREIGN = r"a run of custom_loss, not of dogs_finetune"
BAD_INPUTS = {  # id: (arguments, message); FLAGS: the finished run's command, NEW: a fresh --out
    "changed_setting": (["FLAGS", "--epochs", "1"], r"other settings: --epochs 2 \(now 1\); rerun"),
    "out_under_a_file": (["--quick", "--out", "FILE/run"], r"FILE is a file, not a folder"),
    "out_of_another_script": (["--quick", "--out", "OTHER"], FOREIGN),
    "out_holds_other_files": (["--quick", "--out", "IMAGES"], r"holds files but no run.json"),
    "cache_under_a_file": (["--quick", *NEW, "--cache", "FILE/cache"], r"FILE is a file, not a"),
    "cache_is_a_file": (["--quick", *NEW, "--cache", "FILE"], r"FILE is a file, not a folder"),
    "no_data": (NEW, r"pass --data DIR"),
    "data_missing": (["--data", "NEW/absent", *NEW], r"absent: no such folder"),
    "data_without_classes": (["--data", "EMPTY", *NEW], r"no class folders"),
    "image_size_70": (["--data", "IMAGES", "--image-size", "70", *NEW], r"--image-size ≥ 71"),
    "image_size_0": (["--quick", "--image-size", "0", *NEW], POSITIVE),
    "epochs_0": (["--quick", "--epochs", "0", *NEW], POSITIVE),
    "steps_0": (["--quick", "--steps-per-epoch", "0", *NEW], POSITIVE),
    "workers_0": (["--quick", "--workers", "0", *NEW], POSITIVE),
    "batch_size_1": (["--quick", "--batch-size", "1", *NEW], r"--batch-size ≥ 2"),
    "pseudo_threshold_0": (["--quick", "--pseudo-threshold", "0", *NEW], r"must be in \(0, 1\]"),
    "pseudo_threshold_2": (["--quick", "--pseudo-threshold", "2", *NEW], r"not a number in \[0, 1"),
    "pseudo_label_missing": (
        ["--quick", "--pseudo-label", "NEW/absent", *NEW],
        r"absent: not a folder of images",
    ),
    "pseudo_label_empty": (["--quick", "--pseudo-label", "EMPTY", *NEW], r"not a folder of images"),
    "devices_64": (["--quick", "--devices", "64", *NEW], r"--devices 64: "),
    "predict_top_0": (["predict", "--model", "FAKE", IMAGE, "--top", "0"], POSITIVE),
    "predict_model_of_another_script": (
        ["predict", "--model", "OTHER/model.keras", IMAGE],
        FOREIGN,
    ),
    "predict_model_text_file": (["predict", "--model", "FILE", IMAGE], r"not a run folder of dogs"),
    "predict_model_weights_file": (
        ["predict", "--model", "IMAGES/x.weights.h5", IMAGE],
        r"not a run folder of dogs_finetune",
    ),
    "predict_model_missing": (["predict", "--model", "NEW", IMAGE], r"no such file or folder"),
    "predict_unfinished_run": (["predict", "--model", "UNFINISHED", IMAGE], r"no model.keras.*yet"),
    "predict_classes_without_alpha": (
        ["predict", "--model", "NOALPHA", IMAGE],
        r"classes.json: expected keys classes, alpha, image_size",
    ),
    "predict_classes_not_json": (["predict", "--model", "BADJSON", IMAGE], r"not a readable JSON"),
    "predict_damaged_model": (["predict", "--model", "FAKE", IMAGE], r"model.keras: cannot be"),
    "predict_no_images": (["predict", "--model", "FAKE", "NEW/absent.jpg"], r"no image file or"),
    "predict_csv_under_a_file": (
        ["predict", "--model", "FAKE", IMAGE, "--csv", "FILE/top5.csv"],
        r"--csv .*FILE: .*FILE is a file, not a folder",
    ),
    "predict_csv_is_a_folder": (
        ["predict", "--model", "FAKE", IMAGE, "--csv", "IMAGES"],
        r"IMAGES: is a folder",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_touches_nothing(case, resumed_quick_run, tmp_path, refuses):
    """Issue #17: one line, exit status ≠ 0, no traceback, and the folders stay as they were."""
    argv, message = BAD_INPUTS[case]
    places = {name: tmp_path / name for name in ("FILE", "EMPTY", "IMAGES", "UNFINISHED")}
    places.update(
        NEW=tmp_path / "run",
        FAKE=fake_run(tmp_path / "FAKE"),
        OTHER=fake_run(tmp_path / "OTHER", "custom_loss"),
        NOALPHA=fake_run(tmp_path / "NOALPHA", classes={"classes": [], "image_size": 7}),
        BADJSON=fake_run(tmp_path / "BADJSON"),
    )
    (places["BADJSON"] / "classes.json").write_text("{half")
    dogs.runfolder.open_run("dogs_finetune", places["UNFINISHED"], {}).begin()
    places["FILE"].write_text("not a folder")
    places["EMPTY"].mkdir()
    _write_jpeg(places["IMAGES"] / "a" / "0.jpg", np.random.default_rng(0))
    (places["IMAGES"] / "x.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    parts = [arg.split("/") for arg in argv]
    argv = [
        str(places[part[0]].joinpath(*part[1:])) if part[0] in places else arg
        for part, arg in zip(parts, argv)
    ]
    if argv[0] == "FLAGS":  # the finished run's command with one setting changed
        argv = [*resumed_quick_run[1], *argv[1:]]
    untouched = resumed_quick_run[0] if case == "changed_setting" else tmp_path
    refuses(lambda: dogs.main(argv), match=message, untouched=untouched)


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, refuses):
    """The __main__ block turns Ctrl-C into one line and exit status 130 (runs.command_line)."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dogs.runfolder, "open_run", interrupted)
    monkeypatch.setattr(sys, "argv", ["dogs_finetune.py", "--quick"])
    source = Path(dogs.__file__).read_text(encoding="utf-8")
    guard = source[source.index('\nif __name__ == "__main__":') :]
    namespace = {**vars(dogs), "__name__": "__main__"}
    expected = "^interrupted; rerun the same command to resume$"
    refuses(lambda: exec(guard, namespace), match=expected)  # noqa: S102


# ------------------------------------------------ default recipe, mixed precision, several devices (issue #19)
@pytest.mark.recipe
@pytest.mark.slow  # Xception at 299² through three stages: about a minute on 2 cores; CI runs -m recipe
def test_default_recipe_at_299_trains_every_stage_evaluates_and_writes(tmp_path):
    data = image_folders.write_synthetic_classes(tmp_path / "dogs", num_classes=2, per_class=6)
    metrics = dogs.main(
        [
            "--data",
            str(data),
            "--epochs",
            "1",
            "--steps-per-epoch",
            "1",
            "--batch-size",
            "4",
            "--weights",
            "none",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert (
        metrics["image_size"] == 299 and metrics["devices"] == 1 and metrics["test"]["images"] == 4
    )
    assert set(metrics["stages"]) == {"stage1", "stage2", "stage3"}
    for name in ("model.keras", "metrics.json", "classes.json", "history.csv", "per_class.csv"):
        assert (tmp_path / "run" / name).is_file(), name


@pytest.mark.backend
def test_batch_norm_calibration_records_no_autograd_graph():
    """torch keeps the graph of a call outside torch.no_grad(): 508 MB an image at 299², out of memory for 64."""
    seen = []

    class Spy(keras.layers.Layer):
        def call(self, x):
            if keras.backend.backend() == "torch":
                import torch

                seen.append(torch.is_grad_enabled())
            return x

    inputs = keras.Input((8, 8, 3))
    backbone = keras.Model(
        inputs, Spy()(keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs)))
    )
    dogs.calibrate_batch_norm(
        backbone, np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype("uint8")
    )
    assert not any(seen)
    moving_mean = keras.ops.convert_to_numpy(backbone.layers[2].moving_mean)
    assert np.abs(moving_mean).max() > 0  # the statistics were still set


@pytest.mark.backend
def test_mixed_precision_keeps_both_heads_and_the_centre_loss_float32():
    from common import devices

    with devices.placement(1, mixed_precision=True):
        keras.utils.set_random_seed(0)
        model, predict_model, backbone, _ = dogs.build_model(3, image_size=71, weights="none")
        dogs.set_trainable(backbone, False)
        dogs.compile_model(model, "adam")
        images = np.random.default_rng(0).uniform(0, 255, (4, 71, 71, 3)).astype("float32")
        labels = np.array([[0], [1], [2], [0]], "int32")
        loss = float(
            model.train_on_batch((images, labels), (labels, np.zeros((4, 1), "float32"), labels))[0]
        )
        outputs = model((images, labels))
    assert backbone.get_layer("block1_conv1").compute_dtype == "bfloat16" and np.isfinite(loss)
    assert [keras.backend.standardize_dtype(output.dtype) for output in outputs] == ["float32"] * 3
    assert model.get_layer("l2").centers.embeddings.dtype == "float32"


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--quick"], {"image_size": 71, "epochs": 3, "steps_per_epoch": 8, "batch_size": 16}),
        (["--quick", "--epochs", "3"], {"epochs": 3}),
        (
            ["--quick", "--epochs", "5", "--steps-per-epoch", "20"],
            {"epochs": 5, "steps_per_epoch": 20},
        ),
        (
            ["--quick", "--image-size", "299", "--batch-size", "32"],
            {"image_size": 299, "batch_size": 32},
        ),
        ([], {"image_size": 299, "epochs": 30, "steps_per_epoch": 200, "batch_size": 32}),
        (["train", "--image-size", "128"], {"image_size": 128, "command": "train"}),
        (["predict", "--model", "RUN", "x.jpg"], {"command": "predict", "top": 5, "model": "RUN"}),
    ],
)
def test_quick_changes_defaults_only(flags, expected):
    """Issue #18: --quick sets defaults; a flag given explicitly always wins (71 px was forced)."""
    args = dogs.parse_arguments(flags)
    assert {name: getattr(args, name) for name in expected} == expected
