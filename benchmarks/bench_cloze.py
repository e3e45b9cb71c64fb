"""cloze_lm.py throughput: training and prediction questions a second, with and without bucketing.

Questions are synthetic token ids whose left/right lengths are drawn from the shared CMRC 2017
validation questions (only their lengths are read; nothing is trained on them), capped like training
(--max-side). Both variants run side by side in one process, so the ratio is fair even on a busy
machine; absolute numbers are not.

    python benchmarks/bench_cloze.py [--batches 6] [--max-side 250] [--batch-size 160]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cloze_lm  # noqa: E402
from common import cloze_data  # noqa: E402


def synthetic_samples(lengths, max_side, rng, vocabulary=5000):
    samples = []
    for left_length, right_length in lengths:
        left_length, right_length = min(left_length, max_side), min(right_length, max_side)
        ids = rng.integers(2, vocabulary, left_length + right_length).astype(np.int32)
        ids[rng.integers(len(ids))] = 7  # the answer occurs at least once
        samples.append(
            {
                "qid": str(len(samples)),
                "left": ids[:left_length],
                "right": ids[left_length:],
                "keys": ids,
                "answer_key": 7,
                "key_to_word": {7: "x"},
                "never": np.array([], np.int32),
            }
        )
    return samples


def padding_ratio(batches):
    padded = real = 0
    for index in range(
        1, len(batches)
    ):  # batch 0 is deliberately padded to the widest (see ClozeBatches)
        chosen, left, right, _ = batches.arrays(index)
        padded += left.size + right.size
        real += sum(len(s["keys"]) for s in chosen)
    return padded / real


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=6, help="timed training batches per variant")
    parser.add_argument(
        "--batch-size", type=int, default=160, help="questions per batch (article: 160)"
    )
    parser.add_argument(
        "--max-side", type=int, default=250, help="context cap per side, as in training"
    )
    parser.add_argument(
        "--valid", default=str(cloze_lm.SHARED_DATA / "cmrc2017"), help="where to read lengths"
    )
    args = parser.parse_args(argv)
    import keras

    rng = np.random.default_rng(0)
    try:
        lengths = [
            (len(left), len(right)) for _, left, right, _ in cloze_data.load_validation(args.valid)
        ]
    except SystemExit:
        lengths = rng.integers(1, 400, (1000, 2)).tolist()
    samples = synthetic_samples(lengths, args.max_side, rng)
    model = cloze_lm.build_model(5000)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=cloze_lm.candidate_cross_entropy)
    print(f"{'variant':<12}{'padded/real tokens':>20}{'train q/s':>12}{'predict q/s':>14}")
    rates = {}
    for bucket in (False, True):
        batches = cloze_data.ClozeBatches(
            samples, args.batch_size, rng=np.random.default_rng(1), bucket=bucket
        )
        model.train_on_batch(*batches[1])  # trace once outside the timing
        chosen = list(range(1, min(len(batches), args.batches + 1)))
        start = time.perf_counter()
        for index in chosen:
            model.train_on_batch(*batches[index])
        trained = sum(len(batches.batches[index]) for index in chosen) / (
            time.perf_counter() - start
        )
        start = time.perf_counter()
        for index in chosen:
            model.predict_on_batch(batches[index][0])
        predicted = sum(len(batches.batches[index]) for index in chosen) / (
            time.perf_counter() - start
        )
        name = "bucketed" if bucket else "shuffled"
        rates[name] = (trained, predicted)
        print(
            f"{name:<12}{padding_ratio(batches):>20.3f}{trained:>12.1f}{predicted:>14.1f}",
            flush=True,
        )
    bucketed, shuffled = rates["bucketed"], rates["shuffled"]
    print(
        f"bucketing speed-up: training x{bucketed[0] / shuffled[0]:.2f}, prediction "
        f"x{bucketed[1] / shuffled[1]:.2f} ({keras.backend.backend()} backend)"
    )


if __name__ == "__main__":
    main()
