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
    parser = runs.add_standard_arguments(argparse.ArgumentParser(), epochs=5, batch_size=32, weights="auto")
    args = parser.parse_args(["--batch-size", "8", "--quick"])
    assert (args.epochs, args.batch_size, args.seed, args.weights, args.quick, args.data) == (5, 8, 2017, "auto",
                                                                                            True, None)


def test_run_directory_default_and_explicit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runs.run_directory("demo").parent == tmp_path.joinpath("runs", "demo").relative_to(tmp_path)
    assert runs.run_directory("demo", tmp_path / "mine") == tmp_path / "mine"


@pytest.mark.backend
def test_load_backbone_none_and_missing_path():
    import keras

    model, used = runs.load_backbone(keras.applications.MobileNet, "none", input_shape=(32, 32, 3),
                                     include_top=False, pooling="avg")
    assert used == "none" and model.output_shape == (None, 1024)
    with pytest.raises(SystemExit, match="--weights /no/such.h5: no such file"):
        runs.load_backbone(keras.applications.MobileNet, "/no/such.h5")
