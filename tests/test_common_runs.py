"""common/runs.py: atomic outputs, --weights resolution, shared flags."""

import argparse
import json

import numpy as np
import pytest

from common import runs


def test_write_json_is_atomic_and_handles_numpy(tmp_path):
    path = tmp_path / "metrics.json"
    runs.write_json(path, {"accuracy": np.float32(0.5), "counts": np.arange(3)})
    assert json.loads(path.read_text()) == {"accuracy": 0.5, "counts": [0, 1, 2]}
    with pytest.raises(TypeError):
        runs.write_json(path, {"bad": object()})
    assert json.loads(path.read_text())["accuracy"] == 0.5  # the old file survives a failed write
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with runs.atomic_path(tmp_path / "plot.png") as temporary:
            temporary.write_text("half")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_atomic_files_get_the_umask_permissions_not_mkstemp_private_ones(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        runs.write_json(tmp_path / "metrics.json", {"accuracy": 0.5})
    finally:
        os.umask(umask)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644


def test_standard_arguments_share_names():
    parser = runs.add_standard_arguments(
        argparse.ArgumentParser(), epochs=5, batch_size=32, weights="auto"
    )
    args = parser.parse_args(["--batch-size", "8", "--quick"])
    assert (args.epochs, args.batch_size, args.seed, args.weights, args.quick, args.data) == (
        5,
        8,
        2017,
        "auto",
        True,
        None,
    )


def test_run_directory_default_and_explicit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runs.run_directory("demo").parent == tmp_path.joinpath("runs", "demo").relative_to(
        tmp_path
    )
    assert runs.run_directory("demo", tmp_path / "mine") == tmp_path / "mine"


@pytest.mark.backend
def test_load_backbone_none_and_missing_path():
    import keras

    model, used = runs.load_backbone(
        keras.applications.MobileNet,
        "none",
        input_shape=(32, 32, 3),
        include_top=False,
        pooling="avg",
    )
    assert used == "none" and model.output_shape == (None, 1024)
    with pytest.raises(SystemExit, match="--weights /no/such.h5: no such file"):
        runs.load_backbone(keras.applications.MobileNet, "/no/such.h5")


def grammar():
    main = argparse.ArgumentParser(prog="script.py")
    runs.add_standard_arguments(main, epochs=30, batch_size=64)
    main.add_argument("--size", type=int, default=56)
    predict = argparse.ArgumentParser(prog="script.py predict", description="label images")
    predict.add_argument("--model", required=True)
    predict.add_argument("--quick", action="store_true")
    return main, {"predict": predict}


@pytest.mark.parametrize(
    "argv, command",
    [
        ([], "train"),
        (["train"], "train"),
        (["--epochs", "3"], "train"),
        (["predict", "--model", "m"], "predict"),
    ],
)
def test_bare_command_runs_the_main_job_and_verbs_pick_another(argv, command):
    main, verbs = grammar()
    assert runs.parse_command(argv, main, verbs).command == command


@pytest.mark.parametrize(
    "argv, epochs, size, batch",
    [
        (["--quick"], 2, 32, 64),  # --quick changes defaults
        (
            ["--quick", "--epochs", "3"],
            3,
            32,
            64,
        ),  # a flag given explicitly wins, even equal to the default
        (["--epochs", "30", "--quick"], 30, 32, 64),
        (["--quick", "--size", "56"], 2, 56, 64),
        (["--epochs", "3"], 3, 56, 64),  # without --quick nothing changes
    ],
)
def test_quick_changes_defaults_only(argv, epochs, size, batch):
    main, verbs = grammar()
    args = runs.parse_command(argv, main, verbs, quick={"epochs": 2, "size": 32, "model": "unused"})
    assert (args.epochs, args.size, args.batch_size) == (epochs, size, batch)
    assert not hasattr(args, "model")  # defaults of flags the job does not have are left out


def test_quick_defaults_may_depend_on_the_command_and_help_lists_the_verbs():
    main, verbs = grammar()
    args = runs.parse_command(
        ["predict", "--quick", "--model", "m"],
        main,
        verbs,
        quick=lambda command: {"model": "x"} if command == "train" else {},
    )
    assert args.model == "m"
    assert "predict: label images" in main.format_help()


def test_quick_defaults_skip_a_verb_without_quick():
    main, verbs = grammar()
    verbs["export"] = argparse.ArgumentParser(prog="script.py export", description="export")
    assert runs.parse_command(["export"], main, verbs, quick={"epochs": 2}).command == "export"


def test_save_model_and_plot_history_write_whole_files_only(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    runs.save_model(model, tmp_path / "model.keras")
    runs.plot_history({"loss": [2.0, 1.0], "val_loss": [2.5, 1.5]}, tmp_path / "curves.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "model.keras"]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(reloaded.get_weights()[0], model.get_weights()[0])
