"""custom_loss.py: the article's identities (spec "Testable properties" 4), both forms of each loss, the data, the
command grammar, and short real runs of the three experiments (the measures: test_common_evaluation.py)."""

import csv
import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest

import custom_loss
from common import evaluation

backend = pytest.mark.backend


def as_numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


# ---- smoothed cross-entropy ----------------------------------------------------------------------------------------
@backend
def test_smoothed_crossentropy_known_value():
    loss = custom_loss.smoothed_crossentropy(0.1)(
        np.array([[1.0, 0, 0]], "float32"), np.array([[0.7, 0.2, 0.1]], "float32")
    )
    assert as_numpy(loss)[0] == pytest.approx(0.463297, abs=1e-6)


@backend
@pytest.mark.parametrize("e", [0.0, 0.1, 0.3])
def test_smoothed_crossentropy_equals_label_smoothing(e):
    rng = np.random.default_rng(0)
    y = np.eye(7, dtype="float32")[rng.integers(0, 7, 64)]
    p = rng.dirichlet(np.ones(7), 64).astype("float32")
    ours = as_numpy(custom_loss.smoothed_crossentropy(e)(y, p))
    builtin = keras.losses.CategoricalCrossentropy(label_smoothing=e, reduction=None)(y, p)
    np.testing.assert_allclose(ours, as_numpy(builtin), atol=1e-6)


@backend
@pytest.mark.parametrize("e", [0.0, 0.1, 0.5, 0.9])
def test_uniform_prediction_gives_log_k_for_any_e(e):
    y = np.eye(10, dtype="float32")[[0, 3, 9]]
    loss = custom_loss.smoothed_crossentropy(e)(y, np.full((3, 10), 0.1, "float32"))
    np.testing.assert_allclose(as_numpy(loss), math.log(10), atol=1e-6)


@backend
def test_zero_smoothing_is_plain_crossentropy():
    rng = np.random.default_rng(1)
    y = np.eye(5, dtype="float32")[rng.integers(0, 5, 32)]
    p = rng.dirichlet(np.ones(5), 32).astype("float32")
    np.testing.assert_allclose(
        as_numpy(custom_loss.smoothed_crossentropy(0.0)(y, p)),
        -np.log(np.sum(y * p, axis=1)),
        rtol=1e-5,
    )


@backend
def test_sparse_smoothed_crossentropy_matches_one_hot():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 6, 16)
    p = rng.dirichlet(np.ones(6), 16).astype("float32")
    sparse = custom_loss.sparse_smoothed_crossentropy(0.1)(labels[:, None], p)
    dense = custom_loss.smoothed_crossentropy(0.1)(np.eye(6, dtype="float32")[labels], p)
    np.testing.assert_allclose(as_numpy(sparse), as_numpy(dense), atol=1e-6)


# ---- triplet loss --------------------------------------------------------------------------------------------------
@backend
@pytest.mark.parametrize(
    "wrong, right, expected", [(0.5, 0.7, 0.0), (0.5, 0.55, 0.05), (0.2, 0.9, 0.0)]
)
def test_triplet_loss_known_values(wrong, right, expected):
    loss = custom_loss.TripletMargin(0.1)(
        [np.array([[right]], "float32"), np.array([[wrong]], "float32")]
    )
    assert as_numpy(loss)[0, 0] == pytest.approx(expected, abs=1e-6)


def tiny_triplet(form, seed=0):
    keras.utils.set_random_seed(seed)
    return custom_loss.build_triplet_models(vocabulary_size=30, sequence_length=5, form=form)


def triplet_inputs(count=8, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(1, 30, (count, 5)).astype("int32") for _ in range(3)), np.zeros(
        (count, 1), "float32"
    )


@backend
def test_triplet_training_model_outputs_one_loss_per_sample():
    model, _, _ = tiny_triplet("output")
    inputs, _ = triplet_inputs(6)
    assert model.predict(inputs, verbose=0).shape == (6, 1)


@backend
def test_triplet_loss_invariant_to_rescaling_encodings():
    model, question_encoder, _ = tiny_triplet("output")
    inputs, _ = triplet_inputs()
    before = model.predict(inputs, verbose=0)
    transform = model.get_layer("question_transform")
    transform.set_weights(
        [weight * 7.5 for weight in transform.get_weights()]
    )  # question encodings ×7.5
    np.testing.assert_allclose(model.predict(inputs, verbose=0), before, atol=1e-5)


@backend
@pytest.mark.parametrize("form", ["output", "add_loss"])
def test_evaluate_returns_mean_triplet_loss(form):
    model, _, _ = tiny_triplet(form)
    inputs, dummy = triplet_inputs()
    assert model.evaluate(inputs, dummy, batch_size=8, verbose=0) == pytest.approx(
        float(np.mean(model.predict(inputs, verbose=0))), abs=1e-5
    )


@backend
def test_both_triplet_forms_give_same_loss_on_same_weights():
    output_form, _, _ = tiny_triplet("output")
    add_loss_form, _, _ = tiny_triplet("add_loss", seed=1)
    add_loss_form.set_weights(output_form.get_weights())
    inputs, dummy = triplet_inputs()
    assert add_loss_form.evaluate(inputs, dummy, batch_size=8, verbose=0) == pytest.approx(
        output_form.evaluate(inputs, dummy, batch_size=8, verbose=0), abs=1e-6
    )


@backend
def test_triplet_encoders_give_the_cosines_of_the_training_model():
    model, question_encoder, answer_encoder = tiny_triplet("output")
    (question, right, wrong), _ = triplet_inputs()
    cosines = [
        np.sum(
            evaluation.cosine_matrix(
                question_encoder.predict(question, verbose=0),
                answer_encoder.predict(answer, verbose=0),
            )
            * np.eye(8),
            1,
        )
        for answer in (right, wrong)
    ]
    np.testing.assert_allclose(
        model.predict((question, right, wrong), verbose=0)[:, 0],
        np.maximum(0, 0.1 + cosines[1] - cosines[0]),
        atol=1e-5,
    )


# ---- center loss ---------------------------------------------------------------------------------------------------
def center_layer(layer_class, **kwargs):
    layer = layer_class(3, 3, **kwargs)
    layer.build([(None, 3), (None, 1)])
    layer.centers.set_weights([np.array([[9, 9, 9], [0, 2, 5], [4, 4, 4]], "float32")])
    return layer


@backend
def test_center_distance_known_value():
    distance = center_layer(custom_loss.CenterDistance)(
        [np.array([[1.0, 2, 3]], "float32"), np.array([[1]])]
    )
    assert as_numpy(distance)[0, 0] == pytest.approx(5.0)


@backend
def test_center_loss_adds_weighted_distance():
    layer = center_layer(custom_loss.CenterLoss, weight=0.2)
    features = np.array([[1.0, 2, 3]], "float32")
    np.testing.assert_allclose(as_numpy(layer([features, np.array([1])])), features)
    assert float(as_numpy(layer.losses[0])) == pytest.approx(1.0)


@backend
def test_center_lookup_returns_row_y():
    layer = center_layer(custom_loss.CenterDistance)
    zero = np.zeros((3, 3), "float32")
    # distance from the origin is the squared norm of the looked-up row
    np.testing.assert_allclose(as_numpy(layer([zero, np.array([0, 1, 2])]))[:, 0], [243, 29, 48])


def tiny_center(form, seed=0):
    keras.utils.set_random_seed(seed)
    return custom_loss.build_classifier(feature_dim=4, form=form)


def center_batch(count=16, seed=0, classes=(1, 3)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 28, 28, 1)).astype("uint8"), rng.choice(
        classes, count
    ).astype("int32")


@backend
def test_gradient_step_changes_only_present_class_centers():
    model, _, _ = tiny_center("output")
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=["sparse_categorical_crossentropy", custom_loss.output_as_loss],
        loss_weights=[1.0, 0.2],
    )
    images, labels = center_batch()
    centers = model.get_layer("l2").centers
    before = as_numpy(centers.embeddings).copy()
    model.train_on_batch((images, labels), (labels, np.zeros((16, 1), "float32")))
    changed = np.any(as_numpy(centers.embeddings) != before, axis=1)
    assert changed.tolist() == [k in (1, 3) for k in range(10)]


@backend
def test_total_loss_is_crossentropy_plus_weighted_mean_l2():
    model, _, _ = tiny_center("output")
    images, labels = center_batch()
    probabilities, distances = model.predict((images, labels), verbose=0)
    crossentropy = -np.mean(np.log(probabilities[np.arange(16), labels]))
    total = model.evaluate((images, labels), (labels, np.zeros((16, 1))), batch_size=16, verbose=0)[
        0
    ]
    assert total == pytest.approx(crossentropy + 0.2 * distances.mean(), rel=1e-4)


def copy_weights_by_role(source, target):
    """The two forms hold the same layers in a different order: copy centres to centres, the rest in order."""

    def split(model):
        weighted = [layer for layer in model.layers if layer.weights]
        centers = [layer for layer in weighted if isinstance(layer, custom_loss.CenterDistance)]
        return centers + [layer for layer in weighted if layer not in centers]

    for layer_source, layer_target in zip(split(source), split(target), strict=True):
        layer_target.set_weights(layer_source.get_weights())


@backend
def test_both_center_forms_agree():
    output_form, _, _ = tiny_center("output")
    add_loss_form, _, _ = tiny_center("add_loss", seed=1)
    copy_weights_by_role(output_form, add_loss_form)
    images, labels = center_batch(seed=3, classes=range(10))
    expected = output_form.evaluate(
        (images, labels), (labels, np.zeros((16, 1))), batch_size=16, verbose=0
    )[0]
    ours = add_loss_form.evaluate((images, labels), labels, batch_size=16, verbose=0)[0]
    assert ours == pytest.approx(expected, rel=1e-5)


@backend
def test_center_prediction_model_needs_no_label():
    train_model, prediction_model, feature_model = tiny_center("add_loss")
    assert len(train_model.inputs) == 2 and len(prediction_model.inputs) == 1
    images, _ = center_batch(4)
    assert prediction_model.predict(images, verbose=0).shape == (4, 10)
    assert feature_model.predict(images, verbose=0).shape == (4, 4)


# ---- data ---------------------------------------------------------------------------------------------------------
def test_sentence_pairs_stay_inside_a_paragraph():
    paragraphs = [["甲", "。", "乙", "！", "丙"], ["丁", "。"], ["戊", "？", "己", "。"]]
    questions, answers, groups = custom_loss.sentence_pairs(paragraphs)
    assert questions == [["甲", "。"], ["乙", "！"], ["戊", "？"]]
    assert answers == [["乙", "！"], ["丙"], ["己", "。"]]
    assert groups.tolist() == [0, 0, 2]


# ---- command grammar (issue #18) ----------------------------------------------------------------
def test_quick_changes_defaults_only():
    parse = custom_loss.parse_arguments
    assert parse(["--quick", "--epochs", "3"]).epochs == 3
    assert parse(["triplet", "--epochs", "10", "--quick"]).epochs == 10
    assert parse(["--quick"]).epochs == custom_loss.QUICK_EPOCHS
    assert parse(["center", "--quick"]).epochs == custom_loss.QUICK_EPOCHS
    assert parse(["center"]).epochs == custom_loss.EPOCHS


@pytest.mark.parametrize(
    "argv, command, batch_size",
    [
        ([], "train", None),
        (["train"], "train", None),
        (["smoothing"], "smoothing", 128),
        (["triplet"], "triplet", 64),
        (["center", "--batch-size", "8"], "center", 8),
    ],
)
def test_bare_command_runs_all_three_and_each_experiment_is_a_verb(argv, command, batch_size):
    args = custom_loss.parse_arguments(argv)
    assert (args.command, args.experiment, args.batch_size) == (command, command, batch_size)


def test_help_says_what_the_bare_command_runs(capsys):
    with pytest.raises(SystemExit):
        custom_loss.parse_arguments(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "Runs all three experiments in turn (smoothing, triplet, center)" in shown
    assert all(f"{name}:" in shown for name in custom_loss.EXPERIMENTS)


@pytest.fixture
def fake_experiments(monkeypatch):
    """The three experiments replaced by stubs that record the arguments they get."""
    seen = []

    def stub(name):
        def run_experiment(args, run, rng):
            seen.append((name, args.batch_size, getattr(args, "margin", None), args.data))
            run.begin()
            return {"test": {name: 1.0}}

        return run_experiment

    experiments = {name: (stub(name), text) for name, (_, text) in custom_loss.EXPERIMENTS.items()}
    monkeypatch.setattr(custom_loss, "EXPERIMENTS", experiments)
    return seen


def test_bare_command_runs_each_experiment_as_its_verb_would(fake_experiments, tmp_path):
    flags = ["--quick", "--data", "DIR", "--margin", "0.2"]
    metrics = custom_loss.main([*flags, "--out", str(tmp_path)])
    assert fake_experiments == [
        ("smoothing", 128, None, "DIR"),
        ("triplet", 64, 0.2, None),
        ("center", 128, None, "DIR"),
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["center", "smoothing", "triplet"]
    assert metrics["triplet"] == {"test": {"triplet": 1.0}}
    again = custom_loss.main(
        ["triplet", "--quick", "--margin", "0.2", "--out", str(tmp_path / "triplet")]
    )
    assert again["script"] == "custom_loss" and len(fake_experiments) == 3  # the same run: reported


def test_bare_command_checks_every_folder_before_anything_runs(fake_experiments, tmp_path, refuses):
    (tmp_path / "center").mkdir()
    (tmp_path / "center" / "notes.txt").write_text("mine")
    refuses(
        lambda: custom_loss.main(["--out", str(tmp_path)]),
        match="holds files but no run",
        untouched=tmp_path,
    )
    assert fake_experiments == []


# ---- command line -------------------------------------------------------------------------------
def shrink(patch):
    """Quick runs cut further for the test budget: 500 training items, fewer tests (epochs: a flag)."""
    for name in custom_loss.QUICK_SIZES:
        patch.setitem(custom_loss.QUICK_SIZES, name, (500, 200))
    load_fashion_mnist = custom_loss.load_fashion_mnist
    load_peoples_daily = custom_loss.load_peoples_daily

    def fewer_images(data_dir):
        (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir)
        return (x_train, y_train), (x_test[:2000], y_test[:2000])

    patch.setattr(custom_loss, "load_fashion_mnist", fewer_images)
    patch.setattr(custom_loss, "load_peoples_daily", lambda: load_peoples_daily()[:6000])


@pytest.fixture
def tiny_quick(monkeypatch):
    shrink(monkeypatch)


def history_column(path, column="loss"):
    with open(path, newline="") as handle:
        return [float(row[column]) for row in csv.DictReader(handle)]


def check_outputs(experiment, out, metrics):
    assert metrics["experiment"] == experiment
    assert metrics["environment"]["backend"] == keras.backend.backend()
    histories = sorted(out.glob("history*.csv"))
    assert histories and all(loss[-1] < loss[0] for loss in map(history_column, histories))
    plots = {
        "smoothing": "reliability.png",
        "center": "features.png",
        "triplet": "learning_curves.png",
    }
    assert (out / plots[experiment]).stat().st_size > 0 and (out / "learning_curves.png").is_file()
    for model_file in out.glob("*.keras"):
        keras.saving.load_model(model_file, compile=False)
    assert json.loads((out / "run.json").read_text())["script"] == "custom_loss"
    assert not list(out.glob("backup*"))  # the resume state goes once metrics.json is written
    test = metrics["test"]
    if experiment == "triplet":
        # 500 pairs are too few for the LSTM to generalise; next sentences share words, so bag-of-words must
        assert test["bag_of_words_cosine"]["mrr"] > test["random"]["mrr"]
        assert test["random"]["recall_at_1"] == 0.01
        assert 0 <= test["triplet_lstm"]["recall_at_1"] <= test["triplet_lstm"]["mrr"] <= 1
    else:
        assert all(0 <= result["accuracy"] <= 1 for result in test.values())


@pytest.mark.parametrize(
    "experiment, extra", [("center", ["--feature-dim", "2"]), ("triplet", ["--form", "add_loss"])]
)
def test_quick_run_learns_and_writes_outputs(experiment, extra, tiny_quick, shared_data, tmp_path):
    data = [] if experiment == "triplet" else ["--data", str(shared_data / "fashion-mnist")]
    custom_loss.main(
        [
            experiment,
            "--quick",
            "--epochs",
            "2",
            "--out",
            str(tmp_path),
            "--batch-size",
            "50",
            *data,
            *extra,
        ]
    )
    check_outputs(experiment, tmp_path, json.loads((tmp_path / "metrics.json").read_text()))


QUICK_SMOOTHING = ["smoothing", "--quick", "--batch-size", "50", "--epochs", "3", "--data", "DATA"]


def smoothing_flags(out, shared_data):
    return [*QUICK_SMOOTHING[:-1], str(shared_data / "fashion-mnist"), "--out", str(out)]


@pytest.fixture(scope="module")
def smoothing_run(tmp_path_factory, shared_data):
    """`smoothing --quick` stopped by Ctrl-C as plain's second epoch starts, then run to the end."""
    out = tmp_path_factory.mktemp("smoothing") / "run"
    real_fit = custom_loss.runfolder.fit

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    def interrupted_fit(model, *data, name="", callbacks=(), **options):
        stop = [CtrlC()] if name == "plain" else []
        return real_fit(model, *data, name=name, callbacks=[*callbacks, *stop], **options)

    with pytest.MonkeyPatch.context() as patch:
        shrink(patch)
        with patch.context() as stop:
            stop.setattr(custom_loss.runfolder, "fit", interrupted_fit)
            with pytest.raises(KeyboardInterrupt):
                custom_loss.main(smoothing_flags(out, shared_data))
        interrupted = sorted(path.name for path in out.iterdir())
        plain_epochs = history_column(out / "history_plain.csv", "epoch")
        custom_loss.main(smoothing_flags(out, shared_data))
    return out, json.loads((out / "metrics.json").read_text()), interrupted, plain_epochs


def test_quick_smoothing_run_learns_and_writes_outputs(smoothing_run):
    out, metrics, _, _ = smoothing_run
    check_outputs("smoothing", out, metrics)


def test_interrupted_run_resumes_without_repeating_an_epoch_and_keeps_the_best(smoothing_run):
    out, metrics, interrupted, plain_epochs = smoothing_run
    assert plain_epochs == [0] and "history_smoothed.csv" not in interrupted
    assert "metrics.json" not in interrupted
    for name in ("plain", "smoothed"):
        history = out / f"history_{name}.csv"
        assert history_column(history, "epoch") == [0, 1, 2]
        best = int(np.argmin(history_column(history, "val_loss")))  # the epoch that is kept
        assert metrics["validation"][name]["accuracy"] == pytest.approx(
            history_column(history, "val_accuracy")[best], abs=1e-6
        )


def snapshot(folder):
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.rglob("*"))}


def test_finished_run_rerun_reports_and_trains_nothing(smoothing_run, shared_data, capsys):
    out, metrics, _, _ = smoothing_run
    before = snapshot(out)
    again = custom_loss.main(smoothing_flags(out, shared_data))  # unpatched: loads nothing
    assert again["test"] == metrics["test"] and again["script"] == "custom_loss"
    assert snapshot(out) == before
    assert "holds a finished run of custom_loss" in capsys.readouterr().out


def flipped_fashion_mnist(folder, data):
    """The four files, one bit flipped in t10k-labels' deflate stream (a zlib.error, not a CRC)."""
    folder.mkdir()
    for source in data.glob("*.gz"):
        (folder / source.name).symlink_to(source)
    raw = bytearray((data / "t10k-labels-idx1-ubyte.gz").read_bytes())
    raw[40] ^= 1
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(raw)
    return folder


# Issue #17's bad inputs: id | arguments | the message. QUICK: `smoothing --quick` on the shared data (DATA);
# FINISHED: the finished smoothing run; NEW: a fresh --out; FILE, FOREIGN, HALF, FLIPPED: see the test.
BAD_INPUT_TABLE = r"""
changed_setting | QUICK --out FINISHED --smoothing 0.5 | other settings: --smoothing 0.1 \(now 0.5\); rerun
other_experiment | center --quick --batch-size 50 --epochs 3 --data DATA --out FINISHED | other settings: .*--experiment smoothing \(now center\)
out_under_a_file | QUICK --out FILE/run | FILE is a file, not a folder
out_holds_other_files | QUICK --out FOREIGN | holds files but no run
flipped_gz | QUICK --out NEW --data FLIPPED | FLIPPED/t10k-labels-idx1-ubyte.gz: not a readable gzip
missing_gz | QUICK --out NEW --data HALF | missing train-images-idx3-ubyte.gz
no_data_folder | QUICK --out NEW --data NEW/absent | absent: not a folder
smoothing_above_1 | QUICK --out NEW --smoothing 1.5 | 1.5 is not a number in \[0, 1\]
smoothing_1 | QUICK --out NEW --smoothing 1 | --smoothing must be in \[0, 1\)
smoothing_nan | QUICK --out NEW --smoothing nan | nan is not a number in \[0, 1\]
feature_dim_1 | QUICK --out NEW --feature-dim 1 | --feature-dim must be at least 2
feature_dim_0 | QUICK --out NEW --feature-dim 0 | 0 is not a positive integer
epochs_0 | QUICK --out NEW --epochs 0 | 0 is not a positive int
batch_size_negative | QUICK --out NEW --batch-size -3 | -3 is not a positive integer
margin_0 | triplet --out NEW --margin 0 | 0 is not a positive number
triplet_data | triplet --out NEW --data x | --data is not used
center_weight_negative | center --out NEW --center-weight -1 | -1 is not a number ≥ 0
center_feature_dim_1 | center --out NEW --feature-dim 1 | --feature-dim must be at least 2
margin_for_smoothing | QUICK --out NEW --margin 0.2 | unrecognized arguments: --margin
bare_smoothing_1 | --out NEW --smoothing 1 | --smoothing must be in \[0, 1\)
bare_margin_0 | --out NEW --margin 0 | 0 is not a positive number
bare_out_under_a_file | --out FILE/run | FILE/run/smoothing: .*FILE is a file, not a folder
"""
BAD_INPUTS = {
    case: (
        [
            token
            for word in arguments.split()
            for token in (QUICK_SMOOTHING if word == "QUICK" else [word])
        ],
        message,
    )
    for case, arguments, message in (
        line.split(" | ") for line in BAD_INPUT_TABLE.strip().splitlines()
    )
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_touches_nothing(
    case, smoothing_run, shared_data, tmp_path, refuses
):
    """Issue #17: one line, exit status ≠ 0, no traceback, and the folders stay as they were."""
    argv, message = BAD_INPUTS[case]
    places = {
        "FINISHED": smoothing_run[0],
        "DATA": shared_data / "fashion-mnist",
        **{name: tmp_path / name for name in ("FILE", "FOREIGN", "HALF", "FLIPPED")},
        "NEW": tmp_path / "run",
    }
    places["FILE"].write_text("not a folder")
    places["FOREIGN"].mkdir()
    (places["FOREIGN"] / "notes.txt").write_text("mine")
    places["HALF"].mkdir()
    (places["HALF"] / "train-labels-idx1-ubyte.gz").symlink_to(
        places["DATA"] / "train-labels-idx1-ubyte.gz"
    )
    if case == "flipped_gz":
        flipped_fashion_mnist(places["FLIPPED"], places["DATA"])
    head = [arg.split("/", 1) for arg in argv]
    argv = [
        str(places[part[0]].joinpath(*part[1:])) if part[0] in places else arg
        for part, arg in zip(head, argv)
    ]
    untouched = places["FINISHED"] if "FINISHED" in BAD_INPUTS[case][0] else tmp_path
    refuses(lambda: custom_loss.main(argv), match=message, untouched=untouched)


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, refuses):
    """The __main__ block turns Ctrl-C into one line and exit status 130 (runs.command_line)."""

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(custom_loss, "parse_arguments", interrupted)
    source = Path(custom_loss.__file__).read_text(encoding="utf-8")
    guard = source[source.index('\nif __name__ == "__main__":') :]
    namespace = {**vars(custom_loss), "__name__": "__main__"}
    expected = "^interrupted; rerun the same command to resume$"
    refuses(lambda: exec(guard, namespace), match=expected)  # noqa: S102


# ------------------------------------------------------------------------------------ default recipe (issue #19)
@pytest.fixture
def tiny_data(monkeypatch):
    """The full (not --quick) recipes on a few hundred real items: 500 Fashion-MNIST training images, 200 test."""
    load_fashion_mnist, load_peoples_daily = (
        custom_loss.load_fashion_mnist,
        custom_loss.load_peoples_daily,
    )

    def fewer_images(data_dir):
        (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir)
        return (x_train[:500], y_train[:500]), (x_test[:200], y_test[:200])

    monkeypatch.setattr(custom_loss, "load_fashion_mnist", fewer_images)
    monkeypatch.setattr(custom_loss, "load_peoples_daily", lambda: load_peoples_daily()[:1500])


@pytest.mark.recipe
@pytest.mark.backend
@pytest.mark.parametrize("experiment", ["smoothing", "center", "triplet"])
def test_default_recipe_trains_evaluates_and_writes_on_tiny_data(
    experiment, tiny_data, shared_data, tmp_path
):
    data = [] if experiment == "triplet" else ["--data", str(shared_data / "fashion-mnist")]
    metrics = custom_loss.main([experiment, "--epochs", "1", "--out", str(tmp_path), *data])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["arguments"]["quick"] is False and written["arguments"]["batch_size"] == (
        64 if experiment == "triplet" else 128
    )
    assert written["arguments"].get("feature_dim", 32) == 32 and metrics["test"]
    for model_file in tmp_path.glob("*.keras"):
        keras.saving.load_model(model_file, compile=False)
