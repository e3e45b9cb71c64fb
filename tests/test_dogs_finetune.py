"""Tests for dogs_finetune.py (kexue.fm/archives/4611) on synthetic images with weights=None; no dog photos needed."""
import csv
import json
import shutil

import keras
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

import dogs_finetune as dogs


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
    probe = keras.Model(model.inputs[0], [model.get_layer("glu_linear").input, model.get_layer("glu").output])
    x, glu = (keras.ops.convert_to_numpy(t) for t in probe(images))
    kernel_a, bias_a = (keras.ops.convert_to_numpy(w) for w in model.get_layer("glu_linear").weights)
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
    logs = model.evaluate([images, labels], [labels, np.zeros((4, 1)), labels], return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(logs["softmax_loss"] + 0.25 * logs["l2_loss"] + 0.25 * logs["auxiliary_loss"],
                                         rel=1e-4)


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
    named = {layer.name for layer in trainable if "block13" in layer.name or "block14" in layer.name}
    assert named == {layer.name for layer in backbone.layers
                     if ("block13" in layer.name or "block14" in layer.name) and layer.weights}
    residual = [layer for layer in trainable if layer.name not in named]  # block13's shortcut Conv2D(1024, 1×1) + BN
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
    features = lambda: keras.ops.convert_to_numpy(backbone(sample.astype("float32") / 127.5 - 1, training=False))
    assert features().std() < 1e-3  # a random Xception's features all but vanish
    dogs.calibrate_batch_norm(backbone, sample)
    assert features().std() > 0.05
    assert not any(layer.trainable for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization))


# ------------------------------------------------------------------------------------------------ batches
def test_batch_holds_16_distinct_classes_times_2():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(40), rng.integers(3, 30, 40))
    members = [np.flatnonzero(labels == c) for c in range(40)]
    for _ in range(50):
        rows, classes = dogs.sample_batch(members, rng)
        assert len(rows) == 32 and len(np.unique(classes)) == 16
        np.testing.assert_array_equal(labels[rows], classes)
        assert (np.bincount(classes, minlength=40)[np.unique(classes)] == 2).all()


def test_classes_are_drawn_in_proportion_to_size():
    """Successive draws without replacement: the first class is ∝ size; the more images, the more often drawn."""
    rng = np.random.default_rng(0)
    sizes = np.arange(1, 33)
    members = [np.arange(n) for n in sizes]
    first, included, draws = np.zeros(32), np.zeros(32), 6_000
    for _ in range(draws):
        _, classes = dogs.sample_batch(members, rng)
        first[classes[0]] += 1
        included[np.unique(classes)] += 1
    expected = draws * sizes / sizes.sum()
    assert np.all(np.abs(first - expected) < 4 * np.sqrt(expected) + 1)
    assert np.all(np.diff(included.reshape(4, 8).sum(1)) > 0)  # quarters of the classes by size


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
def test_folder_layout_skips_corrupt_and_converts_grayscale_cmyk_alpha(tmp_path):
    rng = np.random.default_rng(0)
    _write_jpeg(tmp_path / "data" / "akita" / "a.jpg", rng)
    _write_jpeg(tmp_path / "data" / "akita" / "gray.jpg", rng, mode="L")
    (tmp_path / "data" / "akita" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "data" / "beagle").mkdir()
    Image.new("CMYK", (50, 30), (10, 20, 30, 40)).save(tmp_path / "data" / "beagle" / "cmyk.jpg")
    Image.new("RGBA", (30, 50), (255, 0, 0, 0)).save(tmp_path / "data" / "beagle" / "alpha.png")
    data = dogs.load_dataset(tmp_path / "data")
    assert data["layout"] == "folders" and data["classes"] == ["akita", "beagle"]
    images, readable, unreadable = dogs.build_cache(data["paths"], 32, tmp_path / "cache", workers=2)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    assert unreadable == [str(tmp_path / "data" / "akita" / "broken.jpg")] and readable.sum() == 4
    alpha = images[[str(p) for p in data["paths"]].index(str(tmp_path / "data" / "beagle" / "alpha.png"))]
    assert (alpha == 255).all()  # fully transparent → white background, not the hidden red


def test_empty_class_folder_and_imageless_folder_are_clear_errors(tmp_path):
    (tmp_path / "empty_class").mkdir()
    _write_jpeg(tmp_path / "ok" / "x.jpg", np.random.default_rng(0))
    with pytest.raises(ValueError, match="holds no images"):
        dogs.load_dataset(tmp_path)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        dogs.load_dataset(tmp_path / "nothing")
    with pytest.raises(SystemExit, match="^error: "):
        dogs.main(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "run")])


def test_baidu_layout_remaps_noncontiguous_ids_in_order_of_first_appearance(tmp_path):
    rng = np.random.default_rng(0)
    rows = [("img1", "71"), ("img2", "3"), ("img3", "71"), ("img4", "120"), ("img5", "3")]
    for image_id, _ in rows:
        _write_jpeg(tmp_path / "train" / f"{image_id}.jpg", rng)
    (tmp_path / "train.txt").write_text("".join(f"{i} {c} http://x/{i}\n" for i, c in rows))
    data = dogs.load_dataset(tmp_path)
    assert data["layout"] == "baidu"
    assert data["classes"] == ["class_71", "class_3", "class_120"]
    np.testing.assert_array_equal(data["labels"], [0, 1, 0, 2, 1])
    assert data["paths"][3] == tmp_path / "train" / "img4.jpg" and not data["test_mask"].any()


def test_stanford_layout_reads_mat_lists_and_keeps_official_split(tmp_path):
    rng = np.random.default_rng(0)
    train = ["n02085620-Chihuahua/n02085620_1.jpg", "n02085782-Japanese_spaniel/n02085782_1.jpg"]
    test = ["n02085620-Chihuahua/n02085620_2.jpg"]
    for name in train + test:
        _write_jpeg(tmp_path / "Images" / name, rng)
    for file_name, names, labels in (("train_list.mat", train, [1, 2]), ("test_list.mat", test, [1])):
        savemat(tmp_path / file_name, {"file_list": np.array([[np.array([n])] for n in names], dtype=object),
                                       "labels": np.array(labels)[:, None]})
    data = dogs.load_dataset(tmp_path)
    assert data["layout"] == "stanford" and data["classes"] == ["Chihuahua", "Japanese_spaniel"]
    np.testing.assert_array_equal(data["labels"], [0, 1, 0])
    np.testing.assert_array_equal(data["test_mask"], [False, False, True])


def test_cache_is_reused_and_epochs_decode_nothing(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    paths = []
    for c in range(3):
        for k in range(4):
            paths.append(tmp_path / f"c{c}" / f"{k}.jpg")
            _write_jpeg(paths[-1], rng)
    calls = []
    real_decode = dogs.decode_image
    monkeypatch.setattr(dogs, "decode_image", lambda path, size: calls.append(path) or real_decode(path, size))
    images, _, _ = dogs.build_cache(paths, 71, tmp_path / "cache")
    assert len(calls) == 12
    images, _, _ = dogs.build_cache(paths, 71, tmp_path / "cache")  # a rerun: same files, same size
    batches = dogs.DogBatches(images, np.repeat(np.arange(3), 4), np.arange(12), "heavy", steps=3, seed=0,
                              classes_per_batch=3)
    for _ in range(2):
        for step in range(len(batches)):
            (x, y), targets = batches[step]
            assert x.shape == (6, 71, 71, 3) and y.shape == (6, 1)
        batches.on_epoch_end()
    assert len(calls) == 12 and isinstance(images, np.memmap)


# --------------------------------------------------------------------------------------- runs end to end
@pytest.fixture(scope="module")
def resumed_quick_run(tmp_path_factory):
    """`main --quick` interrupted in stage 2, rerun with the same --out (and --pseudo-label) to the end."""
    out = tmp_path_factory.mktemp("dogs") / "run"
    flags = ["--quick", "--out", str(out), "--weights", "none", "--epochs", "2", "--steps-per-epoch", "1",
             "--batch-size", "8", "--workers", "2"]
    epochs_run = []

    class Interrupt(keras.callbacks.Callback):
        def __init__(self, stage):
            super().__init__()
            self.stage = stage

        def on_epoch_end(self, epoch, logs=None):
            epochs_run.append((self.stage, epoch))
            if self.stage == "stage2" and interrupting:
                raise KeyboardInterrupt

    real_callbacks = dogs.stage_callbacks
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dogs, "stage_callbacks",
                      lambda run_dir, stage: real_callbacks(run_dir, stage) + [Interrupt(stage)])
        interrupting = True
        with pytest.raises(KeyboardInterrupt):
            dogs.main(flags)
        after_interrupt = json.loads((out / "progress.json").read_text())
        unlabelled = out / "unlabelled"
        unlabelled.mkdir()
        for path in sorted((out / "synthetic_dogs" / "Images").rglob("*_20.jpg"))[:4]:
            shutil.copy(path, unlabelled / path.name)
        interrupting = False
        metrics = dogs.main(flags + ["--pseudo-label", str(unlabelled), "--pseudo-threshold", "0.01"])
    return out, metrics, after_interrupt, epochs_run


def test_resume_skips_finished_stages_and_continues_the_interrupted_epoch(resumed_quick_run):
    out, metrics, after_interrupt, epochs_run = resumed_quick_run
    assert after_interrupt["finished"] == ["stage1"]
    assert epochs_run == [("stage1", 0), ("stage1", 1), ("stage2", 0),  # first run, stopped after stage2's epoch 0
                          ("stage2", 1), ("stage3", 0), ("stage3", 1), ("pseudo", 0), ("pseudo", 1)]
    with open(out / "history.csv") as handle:
        assert [row["stage"] for row in csv.DictReader(handle)] == ["stage1"] * 2 + ["stage2"] * 2 + ["stage3"] * 2 \
            + ["pseudo"] * 2
    assert not (out / "backup" / "stage2").exists()


def test_quick_run_writes_outputs_that_load(resumed_quick_run):
    out, metrics, _, _ = resumed_quick_run
    for name in ("model.keras", "metrics.json", "classes.json", "history.csv", "history.png", "per_class.csv",
                 "confused_pairs.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["synthetic"] is True and saved["layout"] == "stanford" and saved["test"]["images"] == 64
    assert set(saved["stages"]) == {"stage1", "stage2", "stage3", "pseudo"}
    assert saved["pseudo_label"] == {"folder": str(out / "unlabelled"), "threshold": 0.01, "added": 4,
                                     "candidates": 4}
    assert 0 <= saved["validation"]["alpha"] <= 1
    with open(out / "per_class.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 8


def test_predict_writes_top5_breeds_with_probabilities(resumed_quick_run, tmp_path):
    out, _, _, _ = resumed_quick_run
    dogs.main(["predict", "--model", str(out), str(out / "unlabelled"), "--csv", str(tmp_path / "top5.csv")])
    with open(tmp_path / "top5.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and rows[0]["breed_1"].startswith("synthetic_breed_")
    probabilities = [float(rows[0][f"probability_{k}"]) for k in range(1, 6)]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-3
    with pytest.raises(SystemExit, match="^error: "):
        dogs.main(["predict", "--model", str(tmp_path), str(out / "unlabelled")])


# ------------------------------------------------ default recipe, mixed precision, several devices (issue #19)
@pytest.mark.recipe
@pytest.mark.slow  # Xception at 299² through three stages: about a minute on 2 cores; CI runs -m recipe
def test_default_recipe_at_299_trains_every_stage_evaluates_and_writes(tmp_path):
    data = dogs.write_synthetic_dogs(tmp_path / "dogs", num_classes=2, per_class=6)
    metrics = dogs.main(["--data", str(data), "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4",
                         "--weights", "none", "--workers", "1", "--out", str(tmp_path / "run")])
    assert metrics["image_size"] == 299 and metrics["devices"] == 1 and metrics["test"]["images"] == 4
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
    backbone = keras.Model(inputs, Spy()(keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))))
    dogs.calibrate_batch_norm(backbone, np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype("uint8"))
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
        loss = float(model.train_on_batch((images, labels), (labels, np.zeros((4, 1), "float32"), labels))[0])
        outputs = model((images, labels))
    assert backbone.get_layer("block1_conv1").compute_dtype == "bfloat16" and np.isfinite(loss)
    assert [keras.backend.standardize_dtype(output.dtype) for output in outputs] == ["float32"] * 3
    assert model.get_layer("l2").centers.embeddings.dtype == "float32"


def test_devices_that_are_not_there_stop_before_anything_is_written(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: --devices 64: (only \d|data-parallel training needs)"):
        dogs.main(["--quick", "--devices", "64", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
