"""Images per second of each common/augment.py operation on 56×56 and 299×299 uint8 batches.

python benchmarks/bench_augment.py [--repeats 3]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from timing import best_seconds  # noqa: E402

from common import augment  # noqa: E402


def images_per_second(function, count, repeats):
    return count / best_seconds(function, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'operation':<14}{'56x56 img/s':>14}{'299x299 img/s':>16}")
    for name in ("flip", "rotate", "mask", "zoom", "combine", "center_crop"):
        rates = []
        for side, count in ((56, 1024), (299, 64)):
            batch = rng.integers(0, 256, size=(count, side, side, 3), dtype=np.uint8)
            operations = {
                "flip": lambda: augment.random_flip(batch, rng),
                "rotate": lambda: augment.random_rotate(batch, rng),
                "mask": lambda: augment.random_mask(batch, rng),
                "zoom": lambda: [
                    augment.random_zoom(image, rng, side, background=batch[0]) for image in batch
                ],
                "combine": lambda: [
                    augment.random_combine(image, batch[0], rng) for image in batch
                ],
                "center_crop": lambda: [augment.center_crop(image) for image in batch],
            }
            rates.append(images_per_second(operations[name], count, args.repeats))
        print(f"{name:<14}{rates[0]:>14,.0f}{rates[1]:>16,.0f}")


if __name__ == "__main__":
    main()
