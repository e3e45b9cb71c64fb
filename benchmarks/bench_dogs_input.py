"""Is dogs_finetune.py's input pipeline faster than its model? Images per second, side by side.

Measures (1) decoding a photo-sized JPEG (500×375, about Stanford Dogs' average) to a 299×299
square, which the decode-once cache pays only once; (2) the heavy-augmentation batches from the
uint8 cache with 1 and with N threads (what `keras.utils.PyDataset(workers=N)` runs); (3) stage-1
(frozen backbone) and stage-2 (block13–14 unfrozen) training steps of the article's model on
batches of 32 at 299×299. Prints each rate and the ratios pipeline ÷ training step (above 1: the
model, not the input, is the bottleneck).

    python benchmarks/bench_dogs_input.py [--image-size 299] [--batch-size 32] [--steps 3]
    python benchmarks/bench_dogs_input.py --image-size 71 --batch-size 8 --steps 1 --repeats 1
"""

import argparse
import concurrent.futures
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dogs_finetune as dogs  # noqa: E402
from common import image_folders  # noqa: E402


def rate(function, count, repeats=1):
    """Images per second of `function` (which handles `count` images), best of `repeats`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return count / best


def write_photos(folder, count, rng):
    """Photo-sized JPEGs with smooth content (so they compress like photos, not like noise)."""
    paths = []
    for k in range(count):
        coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((500, 375), Image.BICUBIC)
        paths.append(Path(folder) / f"photo_{k}.jpg")
        image.save(paths[-1], quality=90)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image-size", type=int, default=299, help="input side (default 299, the article's)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="images per batch (default 32, the article's)"
    )
    parser.add_argument(
        "--steps", type=int, default=3, help="timed training steps per stage (default 3)"
    )
    parser.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1), help="pipeline threads"
    )
    parser.add_argument(
        "--classes", type=int, default=100, help="classes of the model (default 100, Baidu's)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="pipeline timings: best of this many (default 3)"
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    size, batch = args.image_size, args.batch_size
    print(
        f"machine: {os.cpu_count()} CPUs; image {size}×{size}; batch {batch}; "
        f"pipeline threads {args.workers}"
    )
    with tempfile.TemporaryDirectory() as folder:
        paths = write_photos(folder, 64, rng)
        decode = rate(
            lambda: [image_folders.decode_image(path, size) for path in paths],
            len(paths),
            args.repeats,
        )
        images, _, _ = image_folders.build_cache(
            paths * 3, size, Path(folder) / "cache", workers=args.workers
        )
        labels = np.repeat(np.arange(16), 12)
        batches = dogs.DogBatches(
            images,
            labels,
            np.arange(len(labels)),
            "heavy",
            steps=8,
            seed=0,
            classes_per_batch=batch // 2,
        )
        one_thread = rate(lambda: [batches[step] for step in range(8)], 8 * batch, args.repeats)
        with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
            threaded = rate(
                lambda: list(pool.map(batches.__getitem__, range(8))), 8 * batch, args.repeats
            )
        del images  # the memmap, before its folder goes

    model, _, backbone, _ = dogs.build_model(args.classes, size, weights="none")
    x = rng.integers(0, 256, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, args.classes, (batch, 1)).astype("int32")
    steps = {}
    for stage, unfreeze_top, optimizer in (("stage 1", False, "adam"), ("stage 2", True, "sgd")):
        dogs.set_trainable(backbone, unfreeze_top)
        dogs.compile_model(model, optimizer)
        model.train_on_batch([x, y], [y, np.zeros((batch, 1)), y])  # trace and warm up
        steps[stage] = rate(
            lambda: [
                model.train_on_batch([x, y], [y, np.zeros((batch, 1)), y])
                for _ in range(args.steps)
            ],
            args.steps * batch,
        )

    print(f"{'what':<44}{'images/s':>10}")
    print(f"{'decode a 500×375 JPEG (paid once, cached)':<44}{decode:>10.1f}")
    print(f"{'heavy-augmented batches from cache, 1 thread':<44}{one_thread:>10.1f}")
    print(f"{f'heavy-augmented batches, {args.workers} threads':<44}{threaded:>10.1f}")
    derived = 1 / (1 / decode + 1 / one_thread)
    print(f"{'decode + augment, 1 thread (derived, no cache)':<44}{derived:>10.1f}")
    for stage, value in steps.items():
        print(f"{f'{stage} training step':<44}{value:>10.1f}")
    for stage, value in steps.items():
        print(
            f"pipeline ({args.workers} threads) ÷ {stage} step: {threaded / value:.1f}×   "
            f"decoding every epoch ÷ {stage} step: {decode / value:.1f}×"
        )


if __name__ == "__main__":
    main()
