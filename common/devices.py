"""`--devices N|all` and `--mixed-precision`: data-parallel training on the engines Keras 3 has,
and bfloat16 compute.

    with devices.placement(args.devices, args.mixed_precision) as placement:
        ...  # build, compile, fit, predict: everything that touches the model

JAX: `keras.distribution.DataParallel` over the devices (weights replicated, each batch split along
its first axis); on several hosts set KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and
_PROCESS_ID on each and `keras.distribution.initialize()` is called here. TensorFlow:
`tf.distribute.MirroredStrategy`. torch: refused (Keras 3 has no data-parallel engine for it).
`--batch-size` stays the global batch, so it must divide by the device count; a last partial batch
that does not is trimmed (training feeds: `usable`) or padded (evaluation: `predict`, `pad`),
because JAX cannot shard it and MirroredStrategy would weight its uneven halves wrongly (measured:
3e-3 off in the weights after one 15-row epoch). Under `mixed_bfloat16` the scripts keep their
softmax/loss layers float32.
"""

import argparse
import contextlib
import os

import numpy as np

POLICY = "mixed_bfloat16"  # bfloat16 needs no loss scaling; what current GPUs and TPUs run fastest
ENGINES = {"jax": "keras.distribution.DataParallel", "tensorflow": "tf.distribute.MirroredStrategy"}


def device_count(text):
    """argparse type of --devices: a positive integer or 'all'."""
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--devices {text!r}: give a positive number or 'all'")
    return value


def add_arguments(parser):
    parser.add_argument(
        "--devices",
        type=device_count,
        default=1,
        metavar="N|all",
        help="data-parallel training on N local devices (GPUs, else CPUs) or all of them, under "
        "KERAS_BACKEND=jax or tensorflow; --batch-size is the global batch, split across the "
        "devices, and must divide by N (default 1)",
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help=f"compute in bfloat16 ({POLICY}); outputs and losses stay float32",
    )
    return parser


class Placement:
    """Where the model runs: `count` devices (replicas), the engine's name, whether the policy is
    mixed."""

    def __init__(self, count=1, engine="single device", mixed_precision=False, processes=(0, 1)):
        self.count, self.engine, self.mixed_precision = count, engine, mixed_precision
        self.process, self.processes = processes  # this host's index and the number of hosts

    def check_batch(self, batch_size, flag="--batch-size"):
        if batch_size % self.count:
            raise SystemExit(
                f"error: {flag} {batch_size} does not divide by --devices {self.count}: the global "
                f"batch is split evenly across devices (use a multiple of {self.count})"
            )

    def usable(self, rows):
        """The most rows ≤ `rows` that split evenly (a training feed drops the rest of its last
        batch)."""
        return rows - rows % self.count

    def pad(self, array):
        """`array` with its last row repeated up to a multiple of the device count (slice the
        outputs back)."""
        missing = -len(array) % self.count
        return (
            array
            if not missing
            else np.concatenate([array, np.repeat(array[-1:], missing, axis=0)])
        )

    def predict(self, model, inputs, on_batch=False, **kwargs):
        """model.predict (or predict_on_batch) on NumPy inputs (an array, or a list or tuple of
        them) of any length: rows are padded to split evenly and the padding's outputs sliced
        off."""
        import keras

        rows = len(keras.tree.flatten(inputs)[0])
        padded = keras.tree.map_structure(self.pad, inputs)
        outputs = (
            model.predict_on_batch(padded)
            if on_batch
            else model.predict(padded, verbose=0, **kwargs)
        )
        return keras.tree.map_structure(lambda output: np.asarray(output)[:rows], outputs)

    def describe(self):
        return {
            "devices": self.count,
            "engine": self.engine,
            "mixed_precision": self.mixed_precision,
            "hosts": self.processes,
        }


def _devices(backend):
    """The devices data parallelism would use: GPUs (or TPUs) where there are any, else the
    CPUs."""
    import keras

    if backend == "jax" and int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) > 1:
        # several hosts: reads KERAS_DISTRIBUTION_* (see docs/scaling.md)
        keras.distribution.initialize()
    return keras.distribution.list_devices()


@contextlib.contextmanager
def placement(devices=1, mixed_precision=False):
    """Set up `devices` (an int or 'all') and the dtype policy; yields a Placement, restores both
    on exit."""
    import keras

    backend = keras.backend.backend()
    if devices != 1 and backend not in ENGINES:
        raise SystemExit(
            f"error: --devices {devices}: data-parallel training needs KERAS_BACKEND=jax or "
            f"tensorflow (Keras 3 has no distribution engine for {backend}); use --devices 1"
        )
    available = _devices(backend) if devices != 1 else []
    count = len(available) if devices == "all" else devices
    if count > 1 and count > len(available):
        raise SystemExit(
            f"error: --devices {count}: only {len(available)} device(s) here "
            f"({', '.join(available)}); use --devices all or a smaller number"
        )
    previous_policy = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy(POLICY)
    try:
        if count == 1:
            yield Placement(1, "single device", mixed_precision)
        elif backend == "jax":
            import jax

            distribution = keras.distribution.DataParallel(devices=available[:count])
            with distribution.scope():
                yield Placement(
                    count,
                    ENGINES[backend],
                    mixed_precision,
                    (jax.process_index(), jax.process_count()),
                )
        else:
            import tensorflow as tf

            strategy = tf.distribute.MirroredStrategy([f"/{name}" for name in available[:count]])
            with strategy.scope():  # Keras takes the strategy of the scope the model is built in
                yield Placement(count, ENGINES[backend], mixed_precision)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def no_grad():
    """A forward pass that records no autograd graph: torch keeps one for any call outside
    `torch.no_grad()` (508 MB an image through Xception at 299² with training=True); TensorFlow and
    JAX record none outside a tape or grad."""
    import keras

    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()
