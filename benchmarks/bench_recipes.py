"""Training throughput of the four full recipes' models at their default input size and
global batch.

One compiled training step per batch on random data (the models, not the input pipelines), so the
numbers are what a GPU run's step costs: images (or questions) per second over all devices and per
device. Uses the scripts' `--devices` and `--mixed-precision` (common/devices.py), so the same
command measures 1 or 8 GPUs.

    python benchmarks/bench_recipes.py  # all four, this machine's devices, float32
    KERAS_BACKEND=jax python benchmarks/bench_recipes.py \\
        --devices all --mixed-precision --batch-scale 8
"""

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import captcha_xception  # noqa: E402
import cloze_lm  # noqa: E402
import dogs_finetune  # noqa: E402
import fashion_mnist_mobilenet  # noqa: E402
from common import devices, runs  # noqa: E402


def recipe(name, batch, rng, cloze_side):
    """(model, x, y) for one global batch of the recipe `name`: the article's model, input size and
    loss."""
    if name == "fashion":
        model = fashion_mnist_mobilenet.build_model(fashion_mnist_mobilenet.IMAGE_SIZE)[0]
        return model, rng.random((batch, 56, 56), np.float32), rng.integers(0, 10, batch)
    if name == "captcha":
        model = captcha_xception.build_model("xception")[0]
        return (
            model,
            rng.uniform(0, 255, (batch, 50, 120, 3)).astype(np.float32),
            tuple(rng.integers(0, 26, (4, batch))),
        )
    if name == "cloze":  # both sides at the training cap: an upper bound on a step's cost
        model = cloze_lm.build_model(50_000)
        model.compile(optimizer="adam", loss=cloze_lm.candidate_cross_entropy)
        sides = tuple(
            rng.integers(2, 50_000, (batch, cloze_side)).astype(np.int32) for _ in range(2)
        )
        target = np.zeros((batch, 2 * cloze_side), np.float32)
        target[np.arange(batch), rng.integers(0, 2 * cloze_side, batch)] = 1
        return model, sides, target
    model, _, backbone, _ = dogs_finetune.build_model(
        100, dogs_finetune.IMAGE_SIZE
    )  # stage 2: block13-14 train
    dogs_finetune.set_trainable(backbone, True)
    dogs_finetune.compile_model(model, "sgd")
    labels = rng.integers(0, 100, (batch, 1)).astype(np.int32)
    return (
        model,
        (rng.uniform(0, 255, (batch, 299, 299, 3)).astype(np.float32), labels),
        (labels, np.zeros((batch, 1), np.float32), labels),
    )


class StepTimer(keras.callbacks.Callback):
    """Wall and CPU seconds (all cores, this process) of every training step; reading the loss waits
    for the step to finish (asynchronous dispatch). CPU seconds do not depend on what else the
    machine runs."""

    def __init__(self):
        super().__init__()
        self.seconds, self.cpu_seconds, self.loss = [], [], None

    def on_train_batch_begin(self, batch, logs=None):
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, batch, logs=None):
        self.loss = float(logs["loss"])
        self.seconds.append(time.perf_counter() - self.start)
        self.cpu_seconds.append(time.process_time() - self.cpu_start)


BATCHES = {"fashion": fashion_mnist_mobilenet.BATCH_SIZE, "captcha": 100, "cloze": 160, "dogs": 32}
EPOCH = {
    "fashion": 54_000,
    "captcha": 90_000,
}  # training items a pass (cloze: its corpus; dogs: 200 steps)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "recipes", nargs="*", default=list(BATCHES), help="fashion captcha cloze dogs (default all)"
    )
    parser.add_argument(
        "--steps", type=int, default=3, help="timed steps after the compiling one (default 3)"
    )
    parser.add_argument(
        "--batch-scale",
        type=int,
        default=1,
        help="global batch = the recipe's × this (e.g. the device count, to keep each device's)",
    )
    parser.add_argument(
        "--cloze-side", type=int, default=250, help="tokens a side for cloze (default the cap 250)"
    )
    devices.add_arguments(parser)
    args = parser.parse_args(argv)
    results = {}
    with devices.placement(args.devices, args.mixed_precision) as placement:
        for name in args.recipes:
            batch = BATCHES[name] * args.batch_scale
            batch -= batch % placement.count  # captcha's 100 does not split over 8 devices: 96
            runs.seed_everything(0)
            model, x, y = recipe(name, batch, np.random.default_rng(0), args.cloze_side)
            timer = StepTimer()  # fit, not train_on_batch: only fit splits the batch across devices

            def repeat(part):
                return np.concatenate([part] * (args.steps + 1))

            model.fit(
                keras.tree.map_structure(repeat, x),
                keras.tree.map_structure(repeat, y),
                batch_size=batch,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[timer],
            )
            seconds, loss = timer.seconds, timer.loss
            step = float(np.median(seconds[1:]))
            results[name] = {
                "global_batch": batch,
                "devices": placement.count,
                "seconds_per_step": round(step, 3),
                "items_per_second": round(batch / step, 1),
                "items_per_second_per_device": round(batch / step / placement.count, 1),
                "cpu_seconds_per_step": round(float(np.median(timer.cpu_seconds[1:])), 3),
                "first_step_seconds": round(seconds[0], 1),
                "finite_loss": bool(np.isfinite(loss)),
            }
            if name in EPOCH:
                results[name]["steps_per_epoch"] = -(-EPOCH[name] // batch)
            print(name, json.dumps(results[name]), flush=True)
    print(
        json.dumps({"results": results, **placement.describe(), "environment": runs.environment()})
    )
    return results


if __name__ == "__main__":
    main()
