"""Chinese cloze data (CMRC 2017, kexue.fm/archives/4564): files, training sources, scoring.

- `parse_doc_query`, `parse_answers`, `read_official`, `load_validation`: the official CMRC 2017
  `*.doc_query` / `*.answer` files as (qid, left, right, answer) questions, the blank cut out.
- `parse_cft` (HFL Children's Fairy Tale, the answer written back), `parse_cmrc2019` (CMRC 2019
  passages cut into documents of CFT's size), `source_documents`: one training source's documents.
- `chinese_ngrams`, `training_documents`, `other_training_text`: decontamination, all training
  text sharing a run of NGRAM Chinese characters with a validation story dropped.
- `cft_blankable`, `candidate`: which words are blanked and may be answered (nouns).
- `encode`, `ClozeBatches`: questions as token ids (PAD 0, UNK 1) and pointer keys, in bucketed
  (left, right) -> soft-target batches.
- `write_answers` (the official answer format), `official_accuracy` (ymcui/cmrc2017's
  evaluate.py), `accuracy`, `baselines` (Top-Frequency, a random candidate).
"""

import collections
import re
import sys
from pathlib import Path

import keras
import numpy as np

from common import runs
from common.chinese_text import segment
from common.datasets import load_peoples_daily

BLANK, UNK_TOKEN = "XXXXX", "<unk>"  # UNK_TOKEN: what an empty side becomes (the original's [0])
PAD, UNK = 0, 1  # the original used 0 for both, which gave NaN losses when the answer was UNK
PD_PARAGRAPHS = 6  # People's Daily has no article ids: a document is 6 consecutive paragraphs
CMRC2019_TOKENS = 120  # -> CFT's document size (mean 132 tokens, 7.6 sentences), see parse_cmrc2019
NGRAM = 13  # drop training text sharing 13 Chinese characters in a row with a validation story
PD_NOUN_TAGS = {"n"}  # Peking University tags: common nouns only (nr splits surname and given name)
SOURCES = {"cft": "hfl-cft/cft.test.auto", "cmrc2019": "cmrc2019/passages.tsv", "pd": None}
PUNCTUATION = set("，。！？、；：“”‘’（）《》…—―-·,.!?;:\"'()[]<>") | {"……", "——", "――"}


def read(path):
    return Path(path).read_text(encoding="utf-8")


def document_line(line, source, number):
    if not (match := re.fullmatch(r"\s*(\d+) \|\|\| (.*)", line)):
        expected = "expected 'N ||| tokens' or '<qid_K> ||| query'"
        raise ValueError(f"{source}:{number}: {expected}, got {line[:60]!r}")
    return match.group(2)


def parse_doc_query(text, source="<string>"):
    """Official `*.doc_query`: `N ||| tokens` lines, then `<qid_K> ||| query` (dropped, as the
    author did) -> [(qid, left, right)], the blank cut out, an empty side [UNK_TOKEN]."""
    questions, lines, start = [], [], 1
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("<qid_"):
            qid, tokens = line.split(" ||| ", 1)[0].strip(), " ".join(lines).split()
            if not lines:
                raise ValueError(f"{source}:{number}: {qid} has no document lines before it")
            if tokens.count(BLANK) != 1:
                found = f"{BLANK} in the document, found {tokens.count(BLANK)}"
                raise ValueError(f"{source}:{start}: expected exactly one {found}")
            cut, lines = tokens.index(BLANK), []
            questions.append((qid, tokens[:cut] or [UNK_TOKEN], tokens[cut + 1 :] or [UNK_TOKEN]))
        elif line.strip():
            start = start if lines else number
            lines.append(document_line(line, source, number))
    if lines:
        raise ValueError(f"{source}:{start}: document without a '<qid_K> ||| query' line after it")
    return questions


def parse_answers(text, source="<string>"):
    """Official `*.answer`: `<qid_K> ||| word` lines -> {qid: word}."""
    answers = {}
    for number, line in enumerate(text.splitlines(), 1):
        if (parts := line.strip().split(" ||| ")) == [""]:
            continue
        if len(parts) != 2 or not parts[0].startswith("<qid_"):
            expected = f"expected '<qid_K> ||| word', got {line[:60]!r}"
            raise ValueError(f"{source}:{number}: {expected}")
        answers[parts[0]] = parts[1]
    return answers


def read_official(doc_query_path, answer_path=None):
    """(qid, left, right, answer) from official files; answer is None without an answer file."""
    questions = parse_doc_query(read(doc_query_path), doc_query_path)
    answers = parse_answers(read(answer_path), answer_path) if answer_path else {}
    if missing := [qid for qid, *_ in questions if answer_path and qid not in answers]:
        raise ValueError(f"{answer_path}: no answer for {missing[0]} ({len(missing)} missing)")
    return [(qid, left, right, answers.get(qid)) for qid, left, right in questions]


def load_validation(valid, flag="--valid"):
    """The questions of `valid`: a folder with cloze.valid.doc_query, or FILE.doc_query, each with
    its .answer beside it; one line if they are not there or hold no question."""
    path = Path(valid)
    doc_query = path / "cloze.valid.doc_query" if path.is_dir() else path
    answer = doc_query.with_suffix(".answer")
    if not doc_query.is_file() or not answer.is_file():
        need = "need cloze.valid.doc_query and .answer (or FILE.doc_query with FILE.answer)"
        raise SystemExit(f"error: {flag} {valid}: {need}")
    if not (questions := read_official(doc_query, answer)):
        raise SystemExit(f"error: {flag} {doc_query}: holds no questions")
    return questions


def parse_cft(text, source="<string>"):
    """HFL Children's Fairy Tale: `N ||| tokens` lines, a document's last `N ||| query ||| answer`
    -> [(tokens, blank_position)], the answer written back into the blank."""
    documents, tokens = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(" ||| ")
        document_line(" ||| ".join(parts[:2]), source, number)
        if len(parts) > 3:
            expected = "expected 'N ||| tokens' or 'N ||| query ||| answer'"
            raise ValueError(f"{source}:{number}: {expected}")
        if len(parts) == 2:
            tokens += parts[1].split()
            continue
        query = parts[1].replace(BLANK, f" {BLANK} ").split()  # one query glues it: "上升 -XXXXX"
        if query.count(BLANK) != 1:
            raise ValueError(f"{source}:{number}: expected one {BLANK} in the query line")
        written = [parts[2].strip() if word == BLANK else word for word in query]
        documents.append((tokens + written, len(tokens) + query.index(BLANK)))
        tokens = []
    if tokens:
        raise ValueError(f"{source}: the last document has no 'N ||| query ||| answer' line")
    return documents


def parse_cmrc2019(text, source="<string>"):
    """CMRC 2019 `context_id<TAB>passage` lines -> token lists of CFT's size: a document ends at the
    first sentence end past CMRC2019_TOKENS, a short rest joins the one before. ` … ` (a removed
    sentence in qualify passages) ends a sentence and is dropped, never learned as a word."""
    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        fields, chunks = line.split("\t"), [[]]
        if line.strip() and (len(fields) != 2 or not fields[1].strip()):
            raise ValueError(f"{source}:{number}: expected 'context_id<TAB>passage'")
        passage = fields[-1].replace(" … ", "\n")
        for sentence in re.findall(r".+?(?:[。！？]+[”’\"]?|$)", passage, re.MULTILINE):
            chunks += [[]] if len(chunks[-1]) >= CMRC2019_TOKENS else []
            chunks[-1] += segment(sentence)  # jieba, HMM off, as the article
        if len(chunks) > 1 and len(chunks[-1]) < CMRC2019_TOKENS // 2:
            chunks[-2:] = [chunks[-2] + chunks[-1]]
        documents += [chunk for chunk in chunks if chunk]
    return documents


def chinese_ngrams(words):
    """Runs of NGRAM Chinese characters only: punctuation and spacing differ between sources."""
    text = re.sub(r"[^\u4e00-\u9fff]", "", "".join(words))
    return {text[i : i + NGRAM] for i in range(len(text) - NGRAM + 1)}


def story_ngrams(question):
    """The NGRAMs of a question's story, the answer written back into the blank."""
    _, left, right, answer = question
    return chinese_ngrams(left + [answer] + right)


def cft_blankable(word):
    """A noun by jieba's dictionary tag; outside the dictionary, a word of 2+ Chinese characters."""
    import jieba.posseg

    tag = jieba.posseg.dt.word_tag_tab.get(word)
    chinese = len(word) > 1 and not re.search(r"[^\u4e00-\u9fff]", word)
    return tag.startswith("n") if tag else chinese


def candidate(word, nouns=False):
    """What prediction may answer: no punctuation, not the filler; with `nouns` a blankable word."""
    return bool(word) and word not in PUNCTUATION and (not nouns or cft_blankable(word))


def source_documents(name, data_dir):
    """One source's documents as lists of (word, tag); only People's Daily has tags."""
    if name == "pd":
        paragraphs, step = load_peoples_daily(with_tags=True), PD_PARAGRAPHS
        return [sum(paragraphs[i : i + step], []) for i in range(0, len(paragraphs), step)]
    if not (path := Path(data_dir) / SOURCES[name]).is_file():
        raise SystemExit(f"error: {path} not found; pass --data DIR, or other --sources")
    parsed = parse_cmrc2019(read(path), path) if name == "cmrc2019" else parse_cft(read(path), path)
    if not parsed:
        raise SystemExit(f"error: --sources {name}: {path} holds no documents")
    return [[(word, "") for word in (d if name == "cmrc2019" else d[0])] for d in parsed]


def training_documents(sources, blank, data_dir, stories=frozenset()):
    """{source: (documents of (word, tag), blankable(word, tag), dropped)}: documents sharing a run
    of NGRAM Chinese characters with `stories` (a set) are dropped."""
    result = {}
    for name in sources:
        documents = source_documents(name, data_dir)
        kept = [d for d in documents if not chinese_ngrams([word for word, _ in d]) & stories]
        nouns = (lambda w, t: t in PD_NOUN_TAGS) if name == "pd" else lambda w, t: cft_blankable(w)
        blankable = (lambda w, t: True) if blank == "any" else nouns
        result[name] = (kept, blankable, len(documents) - len(kept))
    return result


def other_training_text(paths, extra_corpus, stories, recipe):
    """(questions, word2vec corpus) of the official-format --train files and the --extra-corpus
    lines (jieba), without those sharing NGRAM Chinese characters with `stories`; the counts go to
    `recipe` (its "sources" and "dropped_overlapping_validation")."""
    questions, corpus, dropped = [], [], recipe["dropped_overlapping_validation"]
    for path in paths or []:
        official = read_official(path, Path(path).with_suffix(".answer"))
        kept = [question for question in official if not story_ngrams(question) & stories]
        questions, dropped[str(path)] = questions + kept, len(official) - len(kept)
        corpus += [left + right for _, left, right, _ in kept]
        recipe["sources"][str(path)] = {"questions": len(kept)}
    if extra_corpus:
        lines = read(extra_corpus).splitlines()
        kept = [line for line in lines if not chinese_ngrams([line]) & stories]
        corpus += [segment(line) for line in kept if line.strip()]
        recipe["extra_corpus"] = {"path": extra_corpus, "lines": len(lines)}
        dropped["extra_corpus"] = len(lines) - len(kept)
    return questions, corpus


def encode(questions, word_to_id, max_side=None, pointer="words", candidates="all"):
    """Token ids (PAD 0, UNK 1) and pointer keys of each question -> (samples, skipped counts).
    pointer="ids" (the article) groups positions by id: every UNK merges, an UNK answer is skipped;
    "words" groups them by word, so an out-of-vocabulary answer can still be pointed at. `never`:
    keys prediction never picks (punctuation, the filler; with candidates="nouns" non-nouns too)."""
    samples, skipped = [], collections.Counter()
    for qid, left, right, answer in questions:
        left, right = (left[-max_side:], right[:max_side]) if max_side else (left, right)
        words, local = left + right, {}
        ids = np.array([word_to_id.get(word, UNK) for word in words], np.int32)
        if pointer == "ids":
            keys, answer_key = ids, word_to_id.get(answer, UNK) if answer is not None else -1
        else:
            keys = np.array([local.setdefault(word, len(local) + 1) for word in words], np.int32)
            answer_key = local.get(answer, -1)
        if answer is not None and (answer not in words or (pointer == "ids" and answer_key == UNK)):
            skipped["answer not in context" if answer not in words else "answer is UNK"] += 1
            continue
        key_to_word = {int(k): "" if word == UNK_TOKEN else word for k, word in zip(keys, words)}
        if pointer == "ids":
            key_to_word[UNK] = ""  # the original's id2word.get(id, ' '): an UNK answer is a blank
        nouns = candidates == "nouns"  # only what the generator blanks, as Top-Frequency does
        never = [key for key, word in key_to_word.items() if not candidate(word, nouns)]
        sample = {"qid": qid, "left": ids[: len(left)], "right": ids[len(left) :], "keys": keys}
        sample |= {"never": np.array(never, np.int32), "answer_key": answer_key}
        samples.append(sample | {"key_to_word": key_to_word, "answer": answer})
    return samples, skipped


def make_target(left, right, answer_key):
    """Soft target over both sides' positions: uniform over those holding the answer, 0 at PAD."""
    tokens = np.concatenate([left, right])
    target = ((tokens == answer_key) & (tokens != PAD)).astype("float32")
    if target.sum() == 0:
        raise ValueError("the answer does not occur in the context")
    return target / target.sum()


class ClozeBatches(keras.utils.PyDataset):
    """((left_ids, right_ids), soft_target) batches, each padded to its own longest side. Bucketing
    sorts samples by length in pools of 50 batches; the batch order is shuffled every epoch."""

    def __init__(self, samples, batch_size, rng=None, bucket=True, devices=1, **kwargs):
        super().__init__(**kwargs)
        self.samples, self.batch_size, self.rng, self.bucket = samples, batch_size, rng, bucket
        self.devices = devices  # training batches must split evenly: the last drops its remainder
        self.on_epoch_end()

    def length(self, index):
        return len(self.samples[index]["left"]) // 16, len(self.samples[index]["right"])

    def on_epoch_end(self):
        count, size, pool = len(self.samples), self.batch_size, 50 * self.batch_size
        order = self.rng.permutation(count) if self.rng is not None else np.arange(count)
        if self.bucket:
            pools = [sorted(order[s : s + pool], key=self.length) for s in range(0, count, pool)]
            order = np.concatenate(pools or [np.array([], int)])
        batches = [order[s : s + size] for s in range(0, count, size)]
        if self.rng is not None:  # training
            split = [b[: len(b) - len(b) % self.devices] for b in batches if len(b) >= self.devices]
            batches = [split[k] for k in self.rng.permutation(len(split))]
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def arrays(self, index):
        chosen = [self.samples[i] for i in self.batches[index]]
        # Keras fixes the tf.data signature from the first batches: batch 0 is one wider than any
        widest = self.samples if index == 0 else chosen
        width = [max(len(s[side]) for s in widest) + (index == 0) for side in ("left", "right")]
        left, right = (np.zeros((len(chosen), w), np.int32) for w in width)
        keys = np.zeros((len(chosen), sum(width)), np.int32)
        for row, sample in enumerate(chosen):
            size, rest = len(sample["left"]), len(sample["right"])
            left[row, :size], right[row, :rest] = sample["left"], sample["right"]
            keys[row, :size] = sample["keys"][:size]
            keys[row, width[0] : width[0] + rest] = sample["keys"][size:]
        return chosen, left, right, keys

    def __getitem__(self, index):
        chosen, left, right, keys = self.arrays(index)
        cut = left.shape[1]
        targets = [make_target(k[:cut], k[cut:], s["answer_key"]) for k, s in zip(keys, chosen)]
        target = np.stack(targets)
        for row, sample in enumerate(chosen):  # −1: never predicted, so left out of the softmax
            target[row, np.isin(keys[row], sample["never"]) & (target[row] == 0)] = -1
        return (left, right), target


def save_vocabulary(folder, words, vectors):
    """A run's vectors.npy (rows for ids 2..), then vocabulary.txt (line k: the word of id k, from
    <pad> and <unk>); kept as they are when they exist (a resumed run)."""
    if not (Path(folder) / "vectors.npy").is_file():
        with runs.atomic_path(Path(folder) / "vectors.npy") as temporary:
            np.save(temporary, vectors)
        with runs.atomic_path(Path(folder) / "vocabulary.txt") as temporary:
            temporary.write_text("\n".join(["<pad>", UNK_TOKEN] + words), encoding="utf-8")


def load_vocabulary(folder, vectors=True):
    """(words of ids 2.., vectors or None) as `save_vocabulary` wrote them; None without them."""
    vocabulary, table = Path(folder) / "vocabulary.txt", Path(folder) / "vectors.npy"
    if not vocabulary.is_file() or (vectors and not table.is_file()):
        return None
    return read(vocabulary).split("\n")[2:], np.load(table) if vectors else None


def word_ids(words):
    """{word: id} for the words of ids 2.. (`load_vocabulary`'s order; 0 is PAD, 1 is UNK)."""
    return {word: index + 2 for index, word in enumerate(words)}


def write_answers(predictions, questions, path=None):
    """The official answer format, '<qid_K> ||| word' lines (a blank where no answer), to `path`
    (atomically) or, without one, to stdout."""
    lines = "".join(f"{qid} ||| {predictions.get(qid, '')}\n" for qid, *_ in questions)
    if path is None:
        return sys.stdout.write(lines)
    with runs.atomic_path(path) as temporary:
        temporary.write_text(lines, encoding="utf-8")


def official_accuracy(prediction_lines, reference_lines):
    """Exactly results/evaluate.py of ymcui/cmrc2017: a missing qid is wrong; total = references."""
    reference = dict(line.strip().split(" ||| ") for line in reference_lines)
    right = 0
    for line in prediction_lines:
        segments = line.strip().split(" ||| ")
        qid, answer = segments[0], segments[1] if len(segments) > 1 else ""
        if qid not in reference:
            raise ValueError(f"prediction for unknown {qid}")
        right += answer == reference[qid]
    return 100.0 * right / len(reference_lines)


def accuracy(predictions, questions):
    """The official metric of {qid: word} on (qid, left, right, answer) questions."""
    lines = [f"{qid} ||| {predictions[qid]}" for qid, *_ in questions if qid in predictions]
    return official_accuracy(lines, [f"{qid} ||| {answer}" for qid, _, _, answer in questions])


def baselines(questions, rng):
    """Top-Frequency (the most frequent candidate in the context) and a uniformly random candidate.
    Candidates: context words that are nouns by jieba's dictionary (or 2+ Chinese characters outside
    it), as the answers are nouns; every non-punctuation word when a context has none."""
    top, top_any, random = {}, {}, {}
    for qid, left, right, _ in questions:
        if not (words := [w for w in left + right if w not in PUNCTUATION and w != UNK_TOKEN]):
            continue  # no candidate: counted wrong
        every = collections.Counter(words)
        counts = collections.Counter(w for w in words if cft_blankable(w)) or every
        top[qid] = max(counts, key=lambda w: (counts[w], -words.index(w)))
        top_any[qid] = max(every, key=lambda w: (every[w], -words.index(w)))
        random[qid] = sorted(counts)[rng.integers(len(counts))]
    names = {"top_frequency": top, "top_frequency_any_word": top_any, "random_candidate": random}
    return {name: accuracy(answers, questions) for name, answers in names.items()}
