"""cloze_lm.py: changes to the recipe measured side by side on the selection half (issue #15).

Every change trains at one small budget (the protocol that chose the default sources, see
docs/cloze_lm.md): 8,000 generated questions, 60 tokens a side, word2vec 5 epochs, 2 epochs at batch
160, an evaluation on the 500 selection questions every 25 batches (4,000 questions). A finished run
folder is read, not trained again, so the command resumes where it stopped. It prints a Markdown
table (selection accuracy by questions seen, best, last, mean after the first evaluation, held-out,
wall time) and draws every curve in one figure beside noun Top-Frequency on the selection half.
`--generated N` also scores each model on N generated questions it did not train on (the same
sources, generator and seed; their documents were seen), beside Top-Frequency on them: that tells a
model that learned nothing from one that learned the generated task but not CMRC 2017's.

    python benchmarks/cloze_changes.py [--out runs/cloze_changes] [--only baseline lr_3e-3]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cloze_lm  # noqa: E402
from common import cloze_data, runfolder, runs  # noqa: E402
from common.split import random_split  # noqa: E402

BUDGET = ["--questions-per-document", "6", "--max-side", "60", "--w2v-epochs", "5"]
BUDGET += ["--max-questions", "8000", "--epochs", "2", "--eval-every", "25"]
CHANGES = {  # name: flags added to the budget (a later flag wins over the budget's)
    "baseline": [],
    "train_vectors": ["--train-vectors"],
    "lr_3e-3": ["--learning-rate", "3e-3"],
    "candidates_all": ["--candidates", "all"],
    "max_side_250": ["--max-side", "250"],
    "batch_32": ["--batch-size", "32"],
    "match_embeddings": ["--match", "embeddings"],
}


def summary(folder):
    """One table row's numbers from a finished run folder."""
    metrics = runfolder.read_json(folder / "metrics.json")
    log = runfolder.read_json(folder / "selection.json")["log"]
    log = [entry for entry in log if not entry.get("interrupted")]
    seen = [(entry["questions"], entry["selection_accuracy"]) for entry in log]
    accuracies = [accuracy for _, accuracy in seen]
    seconds = metrics["train_seconds"] + metrics["recipe"].get("word2vec_seconds", 0)
    return {
        "seen": seen,
        "training_questions": metrics["recipe"]["training_questions"],
        "best": max(accuracies),
        "last": accuracies[-1],
        "mean_after_first": float(np.mean(accuracies[1:] or accuracies)),
        "held_out": metrics["held_out_accuracy"],
        "minutes": seconds / 60,
    }


def generated_accuracy(folder, count):
    """(accuracy, Top-Frequency) on `count` generated questions past the run's --max-questions."""
    need = ("model.keras", "vocabulary.txt", "metrics.json")
    _, settings, model = runfolder.load_run_model("cloze_lm", folder, need=need)
    args = argparse.Namespace(**settings)
    trained, args.max_questions = args.max_questions, None
    rng = runs.seed_everything(args.seed)  # as cloze_lm.train: the same questions, the same order
    validation = cloze_data.load_validation(args.valid)
    stories = set().union(*map(cloze_data.story_ngrams, validation))
    questions, _, _ = cloze_lm.training_questions(args, rng, stories)
    unseen = questions[trained : trained + count]
    words, _ = cloze_data.load_vocabulary(folder, vectors=False)
    word_to_id = cloze_data.word_ids(words)
    encoding = {"pointer": args.pointer, "candidates": args.candidates}
    samples, _ = cloze_data.encode(unseen, word_to_id, **encoding)
    predictions = cloze_lm.predict_answers(model, samples)
    baseline = cloze_data.baselines(unseen, np.random.default_rng(args.seed))["top_frequency"]
    return cloze_data.accuracy(predictions, unseen), baseline


def selection_top_frequency(valid, seed):
    """Noun Top-Frequency on the selection half, the half cloze_lm.py selects on."""
    validation = cloze_data.load_validation(valid)
    selection_index, _ = random_split(len(validation), (1, 1), seed=seed)
    selection = [validation[i] for i in selection_index]
    return cloze_data.baselines(selection, np.random.default_rng(seed))["top_frequency"]


def table(rows, top_frequency):
    lines = [
        "| change | flags | training questions | selection, questions seen → % | best | last "
        "| mean after the first | held-out | generated, model / Top-Frequency "
        "| wall (word2vec + training) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        curve = ", ".join(f"{seen:,} → {accuracy:.1f}" for seen, accuracy in row["seen"])
        flags = " ".join(CHANGES[name]) or "(the budget only)"
        lines.append(
            f"| {name} | `{flags}` | {row['training_questions']:,} | {curve} | {row['best']:.1f} "
            f"| {row['last']:.1f} | {row['mean_after_first']:.1f} | {row['held_out']:.1f} "
            f"| {row.get('generated', '–')} | {row['minutes']:.1f} min |"
        )
    lines.append(f"\nNoun Top-Frequency on the selection half: {top_frequency:.1f}%.")
    return "\n".join(lines)


def plot(path, rows, top_frequency):
    _, figure, (axes,) = runs.figure_row(1, 6.4, 4.0)
    for name, row in rows.items():
        axes.plot(*zip(*row["seen"]), marker=".", label=name)
    axes.axhline(top_frequency, color="grey", linestyle="--", label="Top-Frequency")
    axes.set(xlabel="training questions seen", ylabel="selection accuracy, %")
    axes.legend(fontsize="small")
    figure.suptitle("cloze_lm.py: changes at one budget (issue #15)")
    runs.save_figure(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/cloze_changes", help="one run folder per change")
    parser.add_argument("--only", nargs="+", choices=list(CHANGES), help="these changes only")
    parser.add_argument("--data", help="as cloze_lm.py's --data")
    parser.add_argument("--valid", default=str(cloze_lm.SHARED_DATA / "cmrc2017"))
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--generated", type=int, default=0, help="N unseen generated questions")
    args = parser.parse_args(argv)
    out, rows = Path(args.out), {}
    for name in args.only or CHANGES:
        folder = out / name
        if not (folder / "metrics.json").is_file():  # trains, or resumes an interrupted run
            data = ["--data", args.data] if args.data else []
            flags = [*BUDGET, *CHANGES[name], *data, "--valid", args.valid]
            cloze_lm.main(["train", *flags, "--seed", str(args.seed), "--out", str(folder)])
        rows[name] = summary(folder)
        if args.generated:
            model, baseline = generated_accuracy(folder, args.generated)
            rows[name]["generated"] = f"{model:.1f} / {baseline:.1f}"
    top_frequency = selection_top_frequency(args.valid, args.seed)
    print(table(rows, top_frequency))
    plot(out / "cloze_changes.png", rows, top_frequency)
    print(f"figure: {out / 'cloze_changes.png'}")
    return rows


if __name__ == "__main__":
    runs.command_line(main)
