"""Simpler GloVe against gensim skip-gram word2vec on one corpus, side by side in one run: speed
ratio and the same quality tests for every set of vectors.

Each method trains in its own child process (so its peak memory is its own) on the same corpus and
vocabulary rule; ours is timed from the token lists to the vectors (vocabulary, counting, 30
passes), gensim's Word2Vec call likewise builds its vocabulary and trains. The parent then scores
every set of vectors: Spearman ρ(‖v‖, −log frequency) (the article: > 0), the norm ranks of
。 ， 的 和, analogy accuracy (3CosAdd, inputs excluded) and the article's sentiment test
(common/word_vectors.py).

    python benchmarks/bench_wordvec.py                         # People's Daily: ours vs word2vec
    python benchmarks/bench_wordvec.py --methods ours,ours-truncate,word2vec --batch-size 32768
    python benchmarks/bench_wordvec.py --write-corpus all.txt  # People's Daily + CMRC 2019 + CFT
    python benchmarks/bench_wordvec.py --data all.txt          #   + reviews, then the same table
    python benchmarks/bench_wordvec.py --score RUN [--score RUN]  # only score trained runs

Without --analogy a small hand-written Chinese set (country–capital, province–capital, gender) is
used: a sanity check, not CA8. On a shared machine every time is inflated; the ratio of one run is
what to compare.
"""

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import simpler_wordvec as wordvec  # noqa: E402
from common import chinese_text, word_vectors  # noqa: E402
from common.datasets import load_peoples_daily  # noqa: E402

BUILT_IN_ANALOGIES = {
    "capital-country": "中国 北京 日本 东京 美国 华盛顿 俄罗斯 莫斯科 英国 伦敦 法国 巴黎 "
    "德国 波恩 韩国 汉城 泰国 曼谷 印度 新德里 埃及 开罗 意大利 罗马 朝鲜 平壤 越南 河内 "
    "加拿大 渥太华 巴基斯坦 伊斯兰堡 伊朗 德黑兰 伊拉克 巴格达 古巴 哈瓦那 菲律宾 马尼拉 "
    "印度尼西亚 雅加达 马来西亚 吉隆坡 澳大利亚 堪培拉 土耳其 安卡拉 西班牙 马德里 希腊 雅典 "
    "波兰 华沙 肯尼亚 内罗毕",
    "province-capital": "广东 广州 浙江 杭州 江苏 南京 湖北 武汉 湖南 长沙 四川 成都 山东 "
    "济南 河南 郑州 河北 石家庄 山西 太原 陕西 西安 辽宁 沈阳 吉林 长春 黑龙江 哈尔滨 福建 "
    "福州 江西 南昌 安徽 合肥 云南 昆明 贵州 贵阳 甘肃 兰州 青海 西宁 广西 南宁 海南 海口 "
    "西藏 拉萨 新疆 乌鲁木齐 内蒙古 呼和浩特",
    "gender": "他 她 父亲 母亲 儿子 女儿 丈夫 妻子 哥哥 姐姐 弟弟 妹妹 男子 女子 男性 女性 "
    "男孩 女孩 男 女 爷爷 奶奶",
}


def write_built_in_analogies(path):
    lines = []
    for section, text in BUILT_IN_ANALOGIES.items():
        words = text.split()
        pairs = list(zip(words[::2], words[1::2]))
        lines.append(f": {section}")
        lines += [f"{a} {b} {c} {d}" for (a, b), (c, d) in itertools.permutations(pairs, 2)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def corpus(args):
    if args.data:
        return list(chinese_text.read_token_lines(chinese_text.text_files(args.data), {}))
    return load_peoples_daily()


def child(method, args, folder):
    """Train one method from the token lists; save vectors, vocabulary and timings into `folder`."""
    documents = corpus(args)
    timing, cpu = {"tokens": sum(len(d) for d in documents)}, time.process_time()
    if method == "word2vec":
        from gensim.models import Word2Vec

        started = time.perf_counter()
        model = Word2Vec(
            documents,
            sg=1,
            negative=10,
            vector_size=128,
            window=wordvec.WINDOW,
            min_count=args.min_count,
            workers=os.cpu_count(),
            epochs=args.w2v_epochs,
            seed=args.seed,
        )
        timing["train"] = time.perf_counter() - started
        words = list(model.wv.index_to_key)
        counts = np.array([model.wv.get_vecattr(w, "count") for w in words])
        vectors = model.wv.vectors
    else:
        wordvec.runs.seed_everything(args.seed)
        started = time.perf_counter()
        words, counts = word_vectors.build_vocabulary(documents, args.min_count)
        cooccurrence = word_vectors.count_cooccurrences(documents, words, wordvec.WINDOW)
        records = wordvec.training_records(cooccurrence, counts, method == "ours-truncate")
        timing["count"] = time.perf_counter() - started
        started = time.perf_counter()
        model, history = wordvec.train_vectors(
            records, words, counts, args.epochs, args.batch_size, seed=args.seed
        )
        timing["train"] = time.perf_counter() - started
        vectors = wordvec.embedding_matrix(model)
        timing["per_pass"] = history
        timing["cpu_seconds"] = time.process_time() - cpu
        timing["weighted_mse"] = wordvec.weighted_error(vectors, *records)
    word_vectors.save_vocabulary(folder, words, counts)
    word_vectors.save_vectors(folder, words, vectors)
    timing.setdefault("cpu_seconds", time.process_time() - cpu)  # every thread's, of what was timed
    timing["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (folder / "timing.json").write_text(json.dumps(timing))


def score(folder, sections, reviews, seed):
    """ρ, norm ranks, analogy and sentiment of the vectors in `folder` (vocab.tsv + vectors.npy)."""
    words, counts, vectors = word_vectors.load_run(folder)
    word_to_id = {w: k for k, w in enumerate(words)}
    result = word_vectors.norm_ranks(vectors, words, counts, wordvec.TRACKED)
    result["analogy"] = word_vectors.evaluate_analogies(sections, vectors, word_to_id)["overall"]
    result["smallest"] = word_vectors.norm_report(words, counts, vectors, 12)[0]
    tokens, labels = reviews
    features = np.stack([word_vectors.sentence_vector(t, vectors, word_to_id) for t in tokens])
    result.update(word_vectors.sentiment_accuracies(features.astype(np.float64), labels, seed))
    return result


def table(results):
    print(
        "| method | count s | train s | total s | CPU s | peak RSS MB | ρ(‖v‖, −log f) "
        "| ranks 。 ， 的 和 | analogy | LR valid / test | MLP valid / test |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for method, row in results.items():
        count, train = row.get("count", 0), row.get("train", np.nan)
        ranks = " ".join(f"{row['rank_' + n]:.0f}" for n in wordvec.TRACKED)
        analogy = row["analogy"]
        print(
            f"| {method} | {count:.1f} | {train:.1f} | {count + train:.1f} | "
            f"{row.get('cpu_seconds', np.nan):.0f} | {row.get('peak_rss_mb', np.nan):.0f} | "
            f"{row['rho']:+.3f} | {ranks} | {analogy['correct']}/{analogy['asked']} = "
            f"{analogy['accuracy']:.3f} (OOV {analogy['oov']}) | {row['lr_valid']:.3f} / "
            f"{row['lr_test']:.3f} | {row['mlp_valid']:.3f} / {row['mlp_test']:.3f} |"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=30, help="our passes (default 30, the article's)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=wordvec.BATCH_SIZE, help="our pairs per step"
    )
    parser.add_argument(
        "--w2v-epochs", type=int, default=10, help="gensim Word2Vec epochs (default 10)"
    )
    parser.add_argument(
        "--min-count", type=int, default=wordvec.SMALL_MIN_COUNT, help="vocabulary rule"
    )
    parser.add_argument("--data", default=None, help="segmented corpus (default People's Daily)")
    parser.add_argument("--analogy", default=None, help="analogy file (default: the built-in set)")
    parser.add_argument("--methods", default="ours,word2vec", help="ours, ours-truncate, word2vec")
    parser.add_argument(
        "--seed", type=int, default=2017, help="seed for training and the review split"
    )
    parser.add_argument("--score", action="append", default=[], help="only score this trained run")
    parser.add_argument(
        "--write-corpus",
        default=None,
        help="write People's Daily + CMRC 2019 + CFT + reviews (jieba, HMM off) here",
    )
    parser.add_argument(
        "--shared-data",
        default=Path(__file__).resolve().parents[2] / "shared" / "data",
        help="folder with cmrc2019/ and hfl-cft/ (for --write-corpus)",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args, Path(args.folder))
    if args.write_corpus:
        started, lines = time.perf_counter(), 0
        with open(args.write_corpus, "w", encoding="utf-8") as out:
            for words in chinese_text.all_chinese_documents(args.shared_data):
                out.write(" ".join(words) + "\n")
                lines += 1
        seconds = time.perf_counter() - started
        print(f"wrote {lines:,} documents to {args.write_corpus} in {seconds:.0f} s")
        return
    scratch = Path(tempfile.mkdtemp(prefix="bench_wordvec."))
    analogy_path = args.analogy or scratch / "analogies.txt"
    if not args.analogy:
        write_built_in_analogies(analogy_path)
    sections = word_vectors.read_analogy_file(analogy_path)
    texts, labels, _ = chinese_text.read_labelled_texts()
    reviews = ([chinese_text.segment(t) for t in texts], labels)
    results = {}
    for run in args.score:
        results[run] = score(Path(run), sections, reviews, args.seed)
    for method in [] if args.score else args.methods.split(","):
        folder = scratch / method
        folder.mkdir()
        print(f"training {method} ...", flush=True)
        subprocess.run(
            [sys.executable, __file__, "--child", method, "--folder", str(folder)]
            + (argv if argv is not None else sys.argv[1:]),
            check=True,
        )
        timing = json.loads((folder / "timing.json").read_text())
        results[method] = dict(timing, **score(folder, sections, reviews, args.seed))
    print(
        f"\ncorpus {args.data or 'People’s Daily 1998-01'}, min-count {args.min_count}, window "
        f"{wordvec.WINDOW}, dim 128; ours {args.epochs} passes batch {args.batch_size}, word2vec "
        f"{args.w2v_epochs} epochs (sg, negative 10, {os.cpu_count()} workers); backend "
        f"{wordvec.keras.backend.backend()}; analogy file {args.analogy or 'built-in'}"
    )
    table(results)
    print(
        f"article (Baidu Baike vectors): LR ≈ {wordvec.ARTICLE['sentiment_lr']:.0%}, "
        f"MLP ≈ {wordvec.ARTICLE['sentiment_mlp']:.0%}"
    )
    for method, row in results.items():
        print(f"{method} smallest norms: {' '.join(row['smallest'])}")
        if "per_pass" in row:
            passes = row["per_pass"]
            print(
                f"{method} weighted MSE {row['weighted_mse']:.4f}; per pass: ρ "
                + " ".join(f"{v:+.2f}" for v in passes["rho"])
            )
            for name, word in wordvec.TRACKED.items():
                print(
                    f"{method} rank of {word} per pass: "
                    + " ".join(f"{v:.0f}" for v in passes[f"rank_{name}"])
                )
    ours = [m for m in results if m.startswith("ours")]
    if ours and "word2vec" in results:
        w2v = results["word2vec"]["train"]
        for method in ours:
            total = results[method]["count"] + results[method]["train"]
            cpu = results[method]["cpu_seconds"] / results["word2vec"]["cpu_seconds"]
            print(
                f"speed: {method} {total:.1f} s / word2vec {w2v:.1f} s = {total / w2v:.2f} "
                f"({'faster' if total < w2v else 'slower'} than word2vec); CPU time ratio {cpu:.2f}"
            )
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
