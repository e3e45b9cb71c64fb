"""common/devices.py: --devices and --mixed-precision, and a data-parallel step equal to the single-device one.

The device count is fixed when a backend starts, so the 2-device runs are child processes: JAX with
XLA_FLAGS=--xla_force_host_platform_device_count=2, TensorFlow with two logical CPU devices.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from common import devices

REPOSITORY = Path(__file__).resolve().parents[1]


def parse(argv):
    return devices.add_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_devices_flag_takes_a_count_or_all_and_defaults_to_one():
    assert parse([]).devices == 1 and parse([]).mixed_precision is False
    assert parse(["--devices", "8"]).devices == 8 and parse(["--devices", "all"]).devices == "all"
    assert parse(["--mixed-precision"]).mixed_precision is True


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_device_counts_are_refused_by_the_parser(value, capsys):
    with pytest.raises(SystemExit) as raised:
        parse(["--devices", value])
    assert raised.value.code != 0 and "positive number or 'all'" in capsys.readouterr().err


@pytest.mark.backend
def test_more_devices_than_there_are_is_one_line():
    with pytest.raises(SystemExit) as raised:
        with devices.placement(64):
            pass
    message = str(raised.value)
    if keras.backend.backend() in devices.ENGINES:
        assert message.startswith("error: --devices 64: only ") and "\n" not in message
    else:
        assert "needs KERAS_BACKEND=jax or tensorflow" in message


def test_a_backend_without_an_engine_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    for count in (2, "all"):
        with pytest.raises(
            SystemExit, match=r"^error: --devices .*needs KERAS_BACKEND=jax or tensorflow .*torch"
        ):
            with devices.placement(count):
                pass
    with devices.placement(1) as placement:  # one device is every backend's
        assert placement.count == 1


def test_the_global_batch_must_divide_by_the_device_count():
    devices.Placement(4).check_batch(64)
    with pytest.raises(SystemExit, match="error: --batch-size 64 does not divide by --devices 3"):
        devices.Placement(3).check_batch(64)
    assert devices.Placement(3).usable(100) == 99 and devices.Placement(1).usable(7) == 7


@pytest.mark.backend
def test_padded_predict_gives_one_row_per_input():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    inputs = np.random.default_rng(0).normal(size=(7, 5)).astype("float32")
    assert len(devices.Placement(3).pad(inputs)) == 9
    padded = devices.Placement(3).predict(
        model, inputs, batch_size=6
    )  # 7 rows → 9 → batches of 6 and 3
    np.testing.assert_allclose(padded, model.predict(inputs, verbose=0), rtol=1e-6)


@pytest.mark.backend
def test_mixed_precision_computes_in_bfloat16_keeps_the_head_float32_and_restores_the_policy():
    with devices.placement(1, mixed_precision=True) as placement:
        assert placement.mixed_precision and keras.config.dtype_policy().name == "mixed_bfloat16"
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6,))
        hidden = keras.layers.Dense(8, activation="relu")(inputs)
        model = keras.Model(
            inputs, keras.layers.Dense(3, activation="softmax", dtype="float32")(hidden)
        )
        model.compile("adam", "sparse_categorical_crossentropy")
        x, y = np.random.default_rng(1).normal(size=(8, 6)).astype("float32"), np.arange(8) % 3
        loss = float(model.train_on_batch(x, y))
        assert (
            model.layers[1].compute_dtype == "bfloat16"
            and model.layers[1].kernel.dtype == "float32"
        )
        assert keras.backend.standardize_dtype(model(x).dtype) == "float32" and np.isfinite(loss)
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.backend
def test_no_grad_records_no_autograd_graph():
    variable = keras.Variable(np.ones(3, "float32"))
    with devices.no_grad():
        output = keras.ops.sum(variable * 2.0)
    if keras.backend.backend() == "torch":
        assert not output.requires_grad
    assert float(output) == 6.0


CHILD = r"""
import json, os, sys
import numpy as np
if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from common import devices
from common.batches import ShuffledBatches


class Rows(ShuffledBatches):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(len(x), batch_size, **kwargs)
        self.x, self.y = x, y

    def __getitem__(self, index):
        rows, weights = self.rows(index), self.weights(index)
        return (self.x[rows], self.y[rows]) + (() if weights is None else (weights,))


def run(count, x, y):
    with devices.placement(count) as placement:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
        # Both runs read the feed a 2-device run needs: 13 rows → batches of 8 and 4 (1 dropped), validation 7 → 8.
        train = Rows(x, y, 8, shuffle=True, seed=1, devices=2)
        history = model.fit(train, validation_data=Rows(x[:7], y[:7], 8, devices=2), epochs=1, verbose=0,
                            shuffle=False)  # Keras would also shuffle the batch order, from Python's random state
        variable = model.weights[0].value
        replicas = (len(variable.sharding.device_set) if hasattr(variable, "sharding")
                    else len(getattr(variable, "values", [variable])))
        return {"history": history.history, "weights": [w.tolist() for w in model.get_weights()],
                "predictions": placement.predict(model, x[:7], batch_size=4).tolist(), "dropped": train.dropped,
                "replicas": replicas, **placement.describe()}


rng = np.random.default_rng(0)
x, y = rng.normal(size=(13, 6)).astype("float32"), rng.integers(0, 3, 13)
print(json.dumps({"one": run(1, x, y), "two": run(2, x, y)}))
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_two_devices_take_the_same_steps_as_one_on_the_same_global_batches(backend):
    if importlib.util.find_spec("jax" if backend == "jax" else "tensorflow") is None:
        pytest.skip(
            f"{backend} is not installed in this interpreter (.ci/run installs jax for its JAX pass)"
        )
    environment = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "PYTHONPATH": str(REPOSITORY),
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=environment,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    one, two = json.loads(child.stdout.strip().splitlines()[-1]).values()
    assert one["devices"] == 1 and two["devices"] == 2 and two["engine"] == devices.ENGINES[backend]
    assert (
        two["replicas"] == 2 and two["dropped"] == 1
    )  # weights on both devices; 13 rows → 12 split evenly
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(
            two["history"][name], one["history"][name], rtol=1e-5, err_msg=name
        )
    for after_two, after_one in zip(two["weights"], one["weights"]):
        np.testing.assert_allclose(after_two, after_one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two["predictions"], one["predictions"], rtol=1e-5, atol=1e-6)
    assert np.shape(two["predictions"]) == (7, 3)  # padding rows sliced off
