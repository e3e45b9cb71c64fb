"""Input pipeline vs model: images per second of resize + flip + batching and of MobileNet's step.

The pipeline must be at least 5× faster than the model on a CPU, so that on a GPU (10–50× faster
model) it is not the bottleneck. Both are measured side by side in one run, on the same machine.

    python benchmarks/bench_fashion_input.py [--data ../shared/data/fashion-mnist] [--size 56]
    python benchmarks/bench_fashion_input.py --batch-size 100 --alpha 1.0 0.25  # both widths
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from timing import best_seconds  # noqa: E402

import fashion_mnist_mobilenet as script  # noqa: E402
from common import augment, datasets  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=None,
        help="Fashion-MNIST idx folder (default: random 28×28 images, which time the same)",
    )
    parser.add_argument(
        "--size", type=int, default=script.IMAGE_SIZE, help="input side (default %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=script.BATCH_SIZE, help="batch size (default %(default)s)"
    )
    parser.add_argument(
        "--alpha",
        type=float,
        nargs="+",
        default=[script.ALPHA],
        help="MobileNet widths to time, side by side (default %(default)s)",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=10000,
        help="images through the pipeline (default %(default)s)",
    )
    parser.add_argument(
        "--steps", type=int, default=10, help="timed training steps (default %(default)s)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="best of this many timings (default %(default)s)"
    )
    args = parser.parse_args(argv)

    if args.data:
        (images, labels), _ = datasets.load_fashion_mnist(args.data)
        images, labels = images[: args.images], labels[: args.images]
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(args.images, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=args.images)

    # The pipeline as the script runs it: resize once, then per batch index + flip + scale.
    resize_seconds = best_seconds(lambda: augment.resize(images, args.size), args.repeats)
    resized = augment.resize(images, args.size)
    batches = script.ImageBatches(resized, labels, args.batch_size, shuffle=True, flip=True)
    batch_seconds = best_seconds(
        lambda: [batches[index] for index in range(len(batches))], args.repeats
    )
    # Upper bound on its cost: the resize counted again every epoch, as if nothing were cached.
    pipeline_rate = len(images) / (resize_seconds + batch_seconds)

    x, y = batches[0]
    model_rates = {}
    for alpha in args.alpha:
        model, _ = script.build_model(args.size, weights="none", alpha=alpha)
        model.train_on_batch(x, y)  # compile / trace outside the timing
        seconds = best_seconds(
            lambda: [model.train_on_batch(x, y) for _ in range(args.steps)], args.repeats
        )
        model_rates[alpha] = args.steps * len(x) / seconds

    print(f"{'stage':<40}{'images/s':>12}")
    resize_name = f"resize 28→{args.size} (Pillow bilinear)"
    print(f"{resize_name:<40}{len(images) / resize_seconds:>12,.0f}")
    print(f"{'batches: index + flip + /255':<40}{len(images) / batch_seconds:>12,.0f}")
    print(f"{'pipeline (resize + flip + batching)':<40}{pipeline_rate:>12,.0f}")
    for alpha, rate in model_rates.items():
        name = f"MobileNet α {alpha} training step, batch {args.batch_size}"
        print(f"{name:<40}{rate:>12,.0f}   ({54_000 / rate:,.0f} s per 54,000-image epoch)")
    if len(model_rates) > 1:
        slowest, fastest = min(model_rates.values()), max(model_rates.values())
        print(f"fastest / slowest width = {fastest / slowest:.1f}×")
    model_rate = min(model_rates.values())
    ratio = pipeline_rate / model_rate
    verdict = "OK" if ratio >= 5 else "TOO SLOW"
    print(f"pipeline / model = {ratio:.1f}× ({verdict}: needs ≥ 5× on a CPU)")
    return ratio


if __name__ == "__main__":
    main()
