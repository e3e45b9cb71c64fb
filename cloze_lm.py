"""Chinese cloze (CMRC 2017), a shared-BiLSTM pointer network: 苏剑林, kexue.fm/archives/4564.

One word of a children's story is replaced by XXXXX. The SAME two-layer BiLSTM reads the left and
the right context, the mean of both sides' final states is a global vector, every position is scored
by its inner product with it, and positions holding the same word add up (pointer-sum). Article:
73.55% valid / 75.77% test, trained on the official CMRC 2017 train set (not available offline).
Here training questions are generated from children's stories and People's Daily (Cui et al. 2016),
dropping all text that shares 13 Chinese characters with a validation story (docs/cloze_lm.md).

    python cloze_lm.py --quick             # 4,000 questions x 2 epochs, 60 tokens a side (CPU)
    python cloze_lm.py                     # the article's recipe: batch 160, 30 epochs
    python cloze_lm.py --match embeddings  # the article's weaker variant (69-70% in the article)
    python cloze_lm.py predict --model RUN FILE.doc_query > answers.txt
    python cloze_lm.py baselines           # Top-Frequency and random candidate on --valid
"""

import argparse
import collections
import json
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from common import cloze_data, devices, runfolder, runs
from common.cloze_data import BLANK, NGRAM, PAD, UNK, UNK_TOKEN, accuracy, candidate
from common.split import SealedTestSet, random_split

SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"
ARTICLE = {"valid": 73.55, "test": 75.77, "official_random": 1.65}
ARTICLE |= {"official_top_frequency": 14.85, "official_as_reader": 69.75}
QUICK = {"questions_per_document": 6, "max_side": 60, "max_questions": 4000, "w2v_epochs": 5}
QUICK |= {"epochs": 2, "eval_every": 0}


# ------------------------------------------------------------------------------------------ data
def generate_questions(documents, blankable, per_document, rng, prefix="gen"):
    """The article's data trick (Cui et al. 2016): blank up to `per_document` tokens a document that
    pass `blankable(word, tag)` and occur elsewhere in it -> [(qid, left, right, answer)]."""
    questions = []
    for number, document in enumerate(documents):
        words = [word for word, _ in document]
        counts = collections.Counter(words)
        repeated = [i for i, word in enumerate(words) if counts[word] > 1 and word != BLANK]
        candidates = [i for i in repeated if candidate(words[i]) and blankable(*document[i])]
        for k, i in enumerate(sorted(rng.permutation(candidates)[:per_document])):
            left, right = words[:i] or [UNK_TOKEN], words[i + 1 :] or [UNK_TOKEN]
            questions.append((f"{prefix}{number}_{k}", left, right, words[i]))
    return questions


# ----------------------------------------------------------------------------------------- model
@keras.saving.register_keras_serializable(package="cloze_lm")
class UnkEmbedding(layers.Layer):
    """Word2vec table (row 0 = PAD, zeros), frozen as the article's unless `train_table`, and one
    trainable vector for UNK (id 1)."""

    def __init__(self, vocabulary_size, dimension, train_table=False, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.dimension = vocabulary_size, dimension
        self.train_table = train_table

    def build(self, input_shape):
        size, uniform = (self.vocabulary_size, self.dimension), keras.initializers.RandomUniform
        table = {"initializer": "zeros", "trainable": self.train_table, "name": "table"}
        self.table = self.add_weight(shape=size, **table)
        self.unk = self.add_weight(shape=(1, size[1]), name="unk", initializer=uniform(-0.05, 0.05))

    def call(self, ids):
        is_unk = ops.cast(ops.expand_dims(ops.equal(ids, UNK), -1), self.compute_dtype)
        return ops.take(self.table, ids, axis=0) * (1 - is_unk) + is_unk * self.unk[0]

    def compute_mask(self, ids, mask=None):
        return ops.not_equal(ids, PAD)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dimension)

    def get_config(self):
        sizes = {"vocabulary_size": self.vocabulary_size, "dimension": self.dimension}
        return {**super().get_config(), **sizes, "train_table": self.train_table}


@keras.saving.register_keras_serializable(package="cloze_lm")
class PointerLogits(layers.Layer):
    """Logits = <position feature, global vector>, -1e12 at padding. match="states" scores the
    layer-2 LSTM states (the article's final model); "embeddings" scores the input word vectors
    through a learned 256->128 projection of the global vector (its weaker first version)."""

    def __init__(self, match="states", **kwargs):
        super().__init__(**kwargs)
        self.match, self.supports_masking = match, True  # padding is masked from the ids themselves

    def compute_mask(self, inputs, mask=None):
        return None

    def build(self, input_shapes):
        if self.match == "embeddings":
            size = (input_shapes[2][-1], input_shapes[4][-1])
            self.projection = self.add_weight(shape=size, name="projection")

    def call(self, inputs):
        ids, states, vectors, global_vector = inputs[:2], inputs[2:4], inputs[4:6], inputs[6]
        features = ops.concatenate(vectors if self.match == "embeddings" else states, axis=1)
        if self.match == "embeddings":
            global_vector = ops.matmul(global_vector, self.projection)
        logits = ops.einsum("btd,bd->bt", features, global_vector)
        mask = ops.concatenate([ops.not_equal(side, PAD) for side in ids], axis=1)
        return ops.where(mask, logits, ops.full_like(logits, -1e12))

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], None)

    def get_config(self):
        return {**super().get_config(), "match": self.match}


def build_model(vocabulary_size, vectors=None, dimension=128, match="states", train_table=False):
    """(left ids (B, Tl), right ids (B, Tr)) -> masked logits over the Tl + Tr positions. ONE
    Bidirectional LSTM per depth reads both sides ("the same brain reads both sides"); the global
    vector is the mean of both sides' final states. `vocabulary_size` counts PAD and UNK; `vectors`
    (vocabulary_size - 2, dimension) fills rows 2.. of the table (`train_table=True`: trainable)."""
    if match not in ("states", "embeddings"):
        raise ValueError(f"match must be 'states' or 'embeddings', got {match!r}")
    inputs = [keras.Input((None,), dtype="int32", name=side) for side in ("left", "right")]
    embedding = UnkEmbedding(vocabulary_size, dimension, train_table, name="embedding")
    lstm = {"units": 128, "return_sequences": True, "return_state": True}
    depth = [layers.Bidirectional(layers.LSTM(**lstm), name=f"bilstm{k}") for k in (1, 2)]
    vectors_of, states_of, finals = [], [], []
    for ids in inputs:
        states = embedding(ids)
        vectors_of.append(states)
        for bilstm in depth:
            states, forward, _, backward, _ = bilstm(states)
        states_of.append(states)
        finals.append(layers.Concatenate()([forward, backward]))
    global_vector = layers.Average(name="global_vector")(finals)
    pointer = PointerLogits(match, dtype="float32", name="pointer")  # float32 in mixed precision
    logits = pointer([*inputs, *states_of, *vectors_of, global_vector])
    model = keras.Model(inputs, logits, name="cloze_lm")
    if vectors is not None:
        table = np.zeros((vocabulary_size, dimension), "float32")
        table[2:] = vectors
        embedding.table.assign(table)
    return model


@keras.saving.register_keras_serializable(package="cloze_lm")
def candidate_cross_entropy(target, logits):
    """Cross-entropy of the soft target under a softmax over the candidates only: positions marked
    −1 (punctuation; with --candidates nouns every non-noun) are left out, as at prediction."""
    logits = ops.where(target < 0, ops.full_like(logits, -1e12), logits)
    return -ops.sum(ops.maximum(target, 0) * ops.log_softmax(logits, axis=-1), axis=-1)


def pointer_sum(keys, probabilities):
    """Add up the probabilities of positions with the same key (0 = padding): best key a row."""
    best = []
    for row_keys, row_probabilities in zip(np.atleast_2d(keys), np.atleast_2d(probabilities)):
        totals = np.bincount(row_keys, weights=row_probabilities, minlength=2)
        totals[PAD] = -1
        best.append(int(np.argmax(totals)))
    return np.array(best)


def masked_softmax(logits):
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def predict_answers(model, samples, batch_size=160, placement=devices.Placement()):
    """{qid: word} by pointer-sum over each question's own candidates."""
    batches, answers = cloze_data.ClozeBatches(samples, batch_size), {}
    for index in range(len(batches)):
        chosen, left, right, keys = batches.arrays(index)
        logits = placement.predict(model, (left, right), on_batch=True)  # padded across devices
        probabilities = masked_softmax(np.asarray(logits, "float64"))
        for row, sample in enumerate(chosen):
            probabilities[row, np.isin(keys[row], sample["never"])] = 0
        for sample, key in zip(chosen, pointer_sum(keys, probabilities)):
            answers[sample["qid"]] = sample["key_to_word"].get(int(key), "")
    return answers


# ----------------------------------------------------------------------------------------- train
def training_questions(args, rng, stories):
    """Generated and --train questions and the word2vec corpus, all without the text that shares
    NGRAM Chinese characters with a validation story (`stories`), and the recipe record."""
    questions, corpus, dropped = [], [], {}
    recipe = {"sources": {}, "dropped_overlapping_validation": dropped}
    sources = cloze_data.training_documents(args.sources, args.blank, args.data, stories)
    for name, (documents, blankable, dropped[name]) in sources.items():  # counts go to `dropped`
        per_document, prefix = args.questions_per_document, f"{name}_"
        generated = generate_questions(documents, blankable, per_document, rng, prefix=prefix)
        questions += generated
        corpus += [[word for word, _ in document] for document in documents]
        recipe["sources"][name] = {"documents": len(documents), "questions": len(generated)}
    more = cloze_data.other_training_text(args.train, args.extra_corpus, stories, recipe)
    questions, corpus = questions + more[0], corpus + more[1]
    print(f"dropped, sharing {NGRAM} Chinese characters with a validation story: {dropped}")
    if not questions:
        raise SystemExit("error: no training questions; pass --sources or --train FILE.doc_query")
    rng.shuffle(questions)
    return questions[: args.max_questions], corpus, recipe


def word_vectors(args, corpus, run, recipe):
    """(words, vectors): gensim skip-gram as the article (128-d, sg, negative 10, min_count 2,
    window 5) on the training text, or the run's own table when it resumes."""
    if run.state == "resume" and (saved := cloze_data.load_vocabulary(run.path)):
        return saved
    if max(collections.Counter(word for text in corpus for word in text).values(), default=0) < 2:
        raise SystemExit("error: no word occurs twice in the word2vec corpus: add training text")
    from gensim.models import Word2Vec

    start, settings = time.time(), {"vector_size": 128, "sg": 1, "negative": 10, "min_count": 2}
    model = Word2Vec(corpus, **settings, epochs=args.w2v_epochs, seed=args.seed, workers=2)
    recipe["word2vec_seconds"] = round(time.time() - start, 1)
    return list(model.wv.index_to_key), model.wv.vectors.astype("float32")


def training_samples(args, run, rng, validation):
    """Training and validation samples for the pointer network, word vectors (ids 2..) and the
    recipe record, from the text that shares nothing with the validation stories."""
    stories = set().union(*map(cloze_data.story_ngrams, validation))
    questions, corpus, recipe = training_questions(args, rng, stories)
    words, vectors = word_vectors(args, corpus, run, recipe)
    word_to_id = cloze_data.word_ids(words)
    encoding = {"pointer": args.pointer, "candidates": args.candidates}
    samples, skipped = cloze_data.encode(questions, word_to_id, args.max_side, **encoding)
    if not samples:
        raise SystemExit(f"error: no training question can be learned ({dict(skipped)})")
    # a validation question skipped (its answer not in its context) is counted wrong
    valid_samples, valid_skipped = cloze_data.encode(validation, word_to_id, **encoding)
    out_of_vocabulary = 100.0 * np.mean([answer not in word_to_id for *_, answer in validation])
    recipe |= {"blank": args.blank, "questions_per_document": args.questions_per_document}
    recipe |= {"max_side": args.max_side, "word2vec_corpus_tokens": sum(map(len, corpus))}
    recipe |= {"vocabulary": len(words) + 2, "training_questions": len(samples)}
    recipe |= {"skipped": dict(skipped), "validation_skipped": dict(valid_skipped)}
    recipe["validation_answers_out_of_vocabulary"] = out_of_vocabulary
    print(
        f"{len(samples)} training questions ({dict(skipped)} skipped), vocabulary "
        f"{len(words) + 2}, {out_of_vocabulary:.1f}% of validation answers out of vocabulary"
    )
    return samples, valid_samples, (words, vectors), recipe


def train(args, run, placement=devices.Placement()):
    placement.check_batch(args.batch_size)
    rng, validation = runs.seed_everything(args.seed), cloze_data.load_validation(args.valid)
    samples, valid_samples, (words, vectors), recipe = training_samples(args, run, rng, validation)
    # Half the shared questions choose the checkpoint; the other half is looked at once, at the end.
    selection_index, test_index = random_split(len(validation), (1, 1), seed=args.seed)
    selection = [validation[i] for i in selection_index]
    model = build_model(len(words) + 2, vectors, match=args.match, train_table=args.train_vectors)
    model.compile(keras.optimizers.Adam(args.learning_rate), loss=candidate_cross_entropy)
    run.begin()  # the inputs are checked and the model is built: the folder is this run's from here
    cloze_data.save_vocabulary(run.path, words, vectors)
    chosen = {qid for qid, *_ in selection}
    selection_samples = [sample for sample in valid_samples if sample["qid"] in chosen]

    def score(model):
        return accuracy(predict_answers(model, selection_samples, placement=placement), selection)

    # The evaluator keeps the best of every evaluation, mid-epoch ones too (the article's recipe);
    # runfolder.fit sees only epoch ends: it resumes and logs (monitor=None) but does not select.
    every, seen = args.eval_every, (args.batch_size, len(samples), "questions")
    evaluator = runfolder.Evaluator(score, run.path, every, *seen)
    batches = cloze_data.ClozeBatches(samples, args.batch_size, rng=rng, devices=placement.count)
    fitting = {"folder": run.path, "epochs": args.epochs, "callbacks": [evaluator]}
    history, _ = runfolder.fit(model, batches, **fitting)
    split = (validation, selection, SealedTestSet(test_index))
    return finish(args, run, placement, evaluator, history, split, valid_samples, recipe)


# -------------------------------------------------------------------------------------- evaluate
def finish(args, run, placement, evaluator, history, split, samples, recipe):
    """Score the best model on the selection, held-out and all shared questions; save outputs."""
    (validation, selection, sealed), out = split, run.path
    best = evaluator.best_model(out / "model.keras")
    predictions = predict_answers(best, samples, placement=placement)
    held_out = sealed.evaluate(lambda index: accuracy(predictions, [validation[i] for i in index]))
    cloze_data.write_answers(predictions, validation, out / "valid.predictions")
    seconds = sum(history["seconds"])  # every epoch, those before a resume too
    weights = {"trainable": best.trainable_weights, "frozen": best.non_trainable_weights}
    baseline = cloze_data.baselines(validation, np.random.default_rng(args.seed))
    metrics = {"selection_accuracy": accuracy(predictions, selection)}
    metrics["held_out_accuracy"] = held_out
    metrics["all_shared_accuracy"] = accuracy(predictions, validation)
    metrics |= {"shared_questions": len(validation), "scored_questions": len(samples)}
    metrics |= {"baselines": baseline, "article": ARTICLE, "recipe": recipe}
    metrics |= {"config": dict(vars(args)), "selected": evaluator.state["best"]}
    metrics["parameters"] = {k: int(sum(np.prod(w.shape) for w in v)) for k, v in weights.items()}
    rate = recipe["training_questions"] * len(history["seconds"]) / max(seconds, 1e-9)
    metrics |= {"train_seconds": round(seconds, 1), "training_questions_per_second": round(rate, 1)}
    metrics |= {**placement.describe(), "environment": runs.environment()}
    top_frequency = cloze_data.baselines(selection, np.random.default_rng(args.seed))
    log = evaluator.state["log"]
    plot_learning_curves(out / "learning_curves.png", history, log, top_frequency["top_frequency"])
    run.finish(metrics)
    shown = {**dict(list(metrics.items())[:3]), **baseline}  # and the baselines' accuracies
    print("shared CMRC 2017 questions:", ", ".join(f"{k} {v:.2f}%" for k, v in shown.items()))
    print(f"article: {ARTICLE['valid']}% valid (official train set) -> {out}")
    return metrics


def plot_learning_curves(path, history, log, top_frequency):
    """Training loss by epoch; selection accuracy against training questions seen at every
    evaluation (what issue #15's long run is judged by), beside Top-Frequency on the same half."""
    log = [entry for entry in log if not entry.get("interrupted") and "questions" in entry]
    _, figure, (loss, selection) = runs.figure_row(2, 4.5, 3.4)
    loss.plot(range(1, len(history["loss"]) + 1), history["loss"], marker="o")
    loss.set(xlabel="epoch", title="training loss")
    seen, accuracies = [e["questions"] for e in log], [e["selection_accuracy"] for e in log]
    selection.plot(seen, accuracies, marker=".")
    selection.axhline(top_frequency, color="grey", linestyle="--", label="Top-Frequency")
    selection.set(xlabel="training questions seen", ylabel="%", title="selection accuracy")
    selection.legend()
    figure.suptitle("cloze_lm")
    runs.save_figure(figure, path)


# ------------------------------------------------------------------------------------------- CLI
def predict(args):
    if args.output and Path(args.output).resolve() == Path(args.file).resolve():
        raise SystemExit(f"error: --output {args.output} is the questions file: pass another path")
    need = ("model.keras", "vocabulary.txt", "metrics.json")
    run, settings, model = runfolder.load_run_model("cloze_lm", args.model, need=need)
    words, _ = cloze_data.load_vocabulary(run, vectors=False)
    if not (questions := cloze_data.read_official(args.file)):
        raise SystemExit(f"error: {args.file}: holds no questions")
    word_to_id = cloze_data.word_ids(words)
    pointer, candidates = settings.get("pointer", "words"), settings.get("candidates", "all")
    samples, _ = cloze_data.encode(questions, word_to_id, pointer=pointer, candidates=candidates)
    predictions = predict_answers(model, samples, args.batch_size)
    cloze_data.write_answers(predictions, questions, args.output)


def parse_arguments(argv):
    count, valid = runs.positive_int, {"default": str(SHARED_DATA / "cmrc2017")}
    main = argparse.ArgumentParser(prog="cloze_lm.py", description="Train and evaluate (main job).")
    runs.add_standard_arguments(main, epochs=30, batch_size=160, data_help="hfl-cft/, cmrc2019/")
    add = main.add_argument
    add("--valid", **valid, help="cloze.valid.doc_query/.answer folder or FILE.doc_query")
    add("--train", nargs="*", help="official-format FILE.doc_query (FILE.answer beside it)")
    add("--sources", default="cft,cmrc2019,pd", help="question sources: cft, cmrc2019, pd or none")
    add("--blank", choices=("nouns", "any"), default="nouns", help="nouns or any repeated word")
    add("--questions-per-document", type=count, default=20, help="generated a document (quick: 6)")
    add("--max-side", type=count, default=250, help="training context, tokens a side (quick: 60)")
    add("--max-questions", type=count, help="at most N training questions (quick: 4000)")
    add("--pointer", choices=("words", "ids"), default="words", help="group positions by word, id")
    add("--candidates", choices=("nouns", "all"), default="nouns", help="answers: nouns or any")
    add("--match", choices=("states", "embeddings"), default="states", help="score states, vectors")
    add("--extra-corpus", help="raw text, one passage a line, added to the word2vec corpus")
    add("--w2v-epochs", type=count, default=10, help="word2vec epochs (quick: 5)")
    add("--train-vectors", action="store_true", help="fine-tune word2vec's table (article: frozen)")
    add("--learning-rate", type=runs.positive_float, default=1e-3, help="Adam's (default 1e-3)")
    add("--eval-every", type=runs.non_negative_int, default=100, help="N batches (0: epoch ends)")
    devices.add_arguments(main)
    predictor = argparse.ArgumentParser(prog="cloze_lm.py predict", description="answer questions")
    predictor.add_argument("--model", required=True, help="a training run folder, or a file in it")
    predictor.add_argument("file", help="questions in the official *.doc_query format")
    predictor.add_argument("--output", help="write '<qid_N> ||| word' lines here, not to stdout")
    predictor.add_argument("--batch-size", type=count, default=160, help="prediction batch size")
    baselines = "Top-Frequency, random candidate"
    scorer = argparse.ArgumentParser(prog="cloze_lm.py baselines", description=baselines)
    scorer.add_argument("--valid", **valid, help="as for training")
    scorer.add_argument("--seed", type=int, default=2017, help="seed of the random baseline")
    verbs = {"predict": predictor, "baselines": scorer}
    args = runs.parse_command(argv, main, verbs, quick={"train": QUICK}.get)  # main job's defaults
    if args.command == "train":
        args.data = args.data or str(SHARED_DATA)
        args.sources = [s for s in dict.fromkeys(args.sources.split(",")) if s not in ("", "none")]
        if set(args.sources) - set(cloze_data.SOURCES):
            choose = "choose from cft, cmrc2019, pd, none"
            raise SystemExit(f"error: --sources {','.join(args.sources)}: {choose}")
    return args


def main(argv=None):
    args = parse_arguments(argv)
    try:
        if args.command == "predict":
            return predict(args)
        if args.command == "baselines":
            questions = cloze_data.load_validation(args.valid)
            result = cloze_data.baselines(questions, np.random.default_rng(args.seed))
            official = {k: ARTICLE[f"official_{k}"] for k in ("random", "top_frequency")}
            print(json.dumps(result | {"official": official}))
            return result
        return runfolder.run_job("cloze_lm", args, train, ("epochs",))  # where training stops
    except (ValueError, OSError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    runs.command_line(main)
