"""Data feed vs model: captchas/s of generation (worker processes) and of the cached pool's
batches, against the Xception training step, measured side by side, printed as ratios.

Generation runs once per run (the pool is cached as .npz); each epoch only reads the cached batches.
The feed must stay well ahead of the model, so that a GPU (10-50x faster than a CPU) is not starved.

    python benchmarks/bench_captcha_input.py [--captchas 2000] [--workers 2] [--batch-size 100]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from timing import best_seconds  # noqa: E402

import captcha_xception as script  # noqa: E402
from common import captchas  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--captchas", type=int, default=2000, help="captchas per timing (default %(default)s)")
    add("--workers", type=int, default=2, help="generator processes (default %(default)s)")
    add("--batch-size", type=int, default=100, help="the article's 100 (default %(default)s)")
    add("--steps", type=int, default=3, help="timed training steps (default %(default)s)")
    backbones = sorted(script.INPUT_SIZE)
    add("--backbone", default="xception", choices=backbones, help="default %(default)s")
    add("--repeats", type=int, default=2, help="best of this many timings (default %(default)s)")
    args = parser.parse_args(argv)
    size = script.INPUT_SIZE[args.backbone]

    one_worker = best_seconds(
        lambda: captchas.generate_captchas(args.captchas, 0, size=size, workers=1), args.repeats
    )
    many_workers = best_seconds(
        lambda: captchas.generate_captchas(args.captchas, 0, size=size, workers=args.workers),
        args.repeats,
    )
    images, labels = captchas.generate_captchas(args.captchas, 0, size=size, workers=args.workers)
    batches = script.CaptchaBatches(images, labels, args.batch_size, shuffle=True)
    feed_seconds = best_seconds(lambda: [batches[k] for k in range(len(batches))], args.repeats)

    model, _ = script.build_model(args.backbone, weights="none")
    x, y = batches[0]
    model.train_on_batch(x, y)  # trace / compile outside the timing
    model_seconds = best_seconds(
        lambda: [model.train_on_batch(x, y) for _ in range(args.steps)], args.repeats
    )

    rates = {
        "generation, 1 process": args.captchas / one_worker,
        f"generation, {args.workers} processes": args.captchas / many_workers,
        "cached pool -> batches": args.captchas / feed_seconds,
        f"{args.backbone} training step": args.steps * len(x) / model_seconds,
    }
    model_rate = rates[f"{args.backbone} training step"]
    for name, rate in rates.items():
        print(
            f"{name:>28}: {rate:10,.0f} captchas/s   ({rate / model_rate:8.1f}x the training step)"
        )
    return rates


if __name__ == "__main__":
    main()
