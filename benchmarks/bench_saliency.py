"""Sentences per second: the article's hidden-state measure, occlusion, integrated gradients.

The article's measure needs one forward pass per sentence; occlusion needs one per word, integrated
gradients 32 forward and backward passes. All three run on the same sentences with the same model,
in one process, so the ratios are comparable even on a busy machine (the absolute numbers are not).

    python benchmarks/bench_saliency.py                  # an untrained article-sized model
    python benchmarks/bench_saliency.py --model runs/rnn_saliency/RUN   # a trained run
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import rnn_saliency  # noqa: E402
from common.chinese_text import build_vocabulary, encode  # noqa: E402
from common.datasets import load_reviews  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="a trained run folder or its model.keras (default: untrained)"
    )
    parser.add_argument(
        "--sentences", type=int, default=1000, help="review sentences to explain (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=2017, help="which sentences (default 2017)")
    args = parser.parse_args(argv)
    texts, _, _ = load_reviews()
    chosen = np.random.default_rng(args.seed).choice(len(texts), args.sentences, replace=False)
    tokens = rnn_saliency.segment([texts[i] for i in chosen])
    if args.model:
        classifier, word_to_id = rnn_saliency.load_run(args.model)
    else:
        vocabulary_texts = rnn_saliency.segment(texts[:6000])
        word_to_id = build_vocabulary(vocabulary_texts, rnn_saliency.MIN_COUNT)
        classifier, _ = rnn_saliency.build_model(len(word_to_id))
    ids = encode(tokens, word_to_id, rnn_saliency.MAXLEN)
    ids = ids[(ids != 0).any(axis=1)]
    speeds = {}
    for name in ("hidden state (article)", "occlusion", "integrated gradients"):
        rnn_saliency.METHODS[name](classifier, ids[:200])  # warm up: build, trace the functions
        started = time.perf_counter()
        rnn_saliency.METHODS[name](classifier, ids)
        speeds[name] = len(ids) / (time.perf_counter() - started)
    article = speeds["hidden state (article)"]
    print(
        f"{len(ids)} sentences, {(ids != 0).sum(axis=1).mean():.1f} in-vocabulary words on average"
    )
    for name, speed in speeds.items():
        ratio = article / speed
        print(f"{name:24s} {speed:9.1f} sentences/s   article's measure is {ratio:6.1f}x faster")


if __name__ == "__main__":
    main()
