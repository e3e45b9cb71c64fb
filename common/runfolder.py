"""The run-folder contract every script follows, so that rerunning a command is always safe.

- `open_run(script, out, settings)`: a run folder records the settings that define it (run.json).
  The same command again resumes an interrupted run, or, when metrics.json exists, reports the
  finished run and trains nothing; different settings get one line naming them, and nothing is
  touched. `runtime` names flags that do not define the run: `run_job(..., runtime=("epochs",))`
  makes --epochs only where training stops (no schedule depends on it), so a resumed run may stop
  at the epochs it reached, evaluate and finish, or go on longer.
- `fit(...)`: Keras `fit` that resumes at the last finished epoch, keeps the best epoch over every
  epoch (across resumes), writes history.csv with no repeated epoch, and stops on `patience`. One
  state file is the commit point of each epoch, so a kill at any moment leaves a consistent folder.
- `find_run(script, path)`: for readers (predict, explain, analyses): a run folder, or a file in
  one, made by this script; anything else is one line.
"""

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np

from common import runs

MANIFEST = "run.json"
RUNTIME_FLAGS = {
    "out",
    "quick",
    "devices",
    "workers",
    "func",
    "command",
    "verb",
}  # do not change results


def settings_of(args, runtime=()):
    """The flags that define a run as plain JSON values (paths and tuples become strings and
    lists)."""
    skip = RUNTIME_FLAGS | set(runtime)
    values = {
        name: value
        for name, value in sorted(vars(args).items())
        if name not in skip and not callable(value)
    }
    return json.loads(json.dumps(values, default=str))


class RunFolder:
    """An output folder with its state: "new" (nothing in it yet), "resume" or "finished"."""

    def __init__(self, script, path, settings, state):
        self.script, self.path, self.settings, self.state = script, Path(path), settings, state

    @property
    def finished(self):
        return self.state == "finished"

    def begin(self):
        """Create the folder and record what defines the run; call it once the inputs have been
        checked."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / MANIFEST).is_file():
            runs.write_json(
                self.path / MANIFEST,
                {
                    "script": self.script,
                    "settings": self.settings,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                },
            )
        return self.path

    def report_finished(self):
        """What a rerun of a finished run prints; returns its metrics."""
        print(
            f"{self.path} holds a finished run of {self.script}: "
            f"results in {self.path / 'metrics.json'} (pass a new --out to train again)"
        )
        return read_json(self.path / "metrics.json")

    def finish(self, metrics):
        """Write metrics.json, marked with the script, as the run's last file; drop the resume
        state."""
        runs.write_json(self.path / "metrics.json", {"script": self.script, **metrics})
        for backup in self.path.glob("backup*"):
            shutil.rmtree(backup, ignore_errors=True)
        return metrics


def read_json(path):
    """A JSON object written by a run; one line if it is not one."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemExit(
            f"error: {path}: not a readable JSON file ({type(error).__name__})"
        ) from None
    if not isinstance(value, dict):
        raise SystemExit(f"error: {path}: not a JSON object, so not a run's file")
    return value


def check_folder(path, flag="--out"):
    for place in (path, *path.parents):
        if place.exists() and not place.is_dir():
            raise SystemExit(f"error: {flag} {path}: {place} is a file, not a folder")


def open_run(script, out, settings, runtime=()):
    """The run folder for `--out` (default runs/<script>/<timestamp>), checked against what it
    already holds; the `runtime` flags are not compared (see run_job)."""
    path = Path(out) if out else Path("runs") / script / time.strftime("%Y%m%d-%H%M%S")
    check_folder(path)
    manifest = path / MANIFEST
    if manifest.is_file():
        recorded = read_json(manifest)
        if recorded.get("script") != script:
            raise SystemExit(
                f"error: --out {path} is a run of {recorded.get('script')}, not of {script}; "
                "pass a new --out"
            )
        before = {k: v for k, v in recorded.get("settings", {}).items() if k not in runtime}
        differing = [
            name
            for name in sorted(set(before) | set(settings))
            if before.get(name) != settings.get(name)
        ]
        if differing:
            shown = ", ".join(
                f"--{name.replace('_', '-')} {before.get(name)} (now {settings.get(name)})"
                for name in differing[:4]
            )
            raise SystemExit(
                f"error: --out {path} was made with other settings: {shown}"
                f"{' …' if len(differing) > 4 else ''}; rerun with those flags or pass a new --out"
            )
        state = "finished" if (path / "metrics.json").is_file() else "resume"
    elif path.is_dir() and any(path.iterdir()):
        raise SystemExit(
            f"error: --out {path} holds files but no {MANIFEST}, so it is not a run of {script} "
            "(or one made before runs recorded their settings); pass a new --out"
        )
    else:
        state = "new"
    return RunFolder(script, path, settings, state)


def find_run(script, path, flag="--model", need=("model.keras",)):
    """The run folder of `path` (the folder or a file in it) if `script` made it and it holds
    `need`."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"error: {flag} {path}: no such file or folder")
    folder = path if path.is_dir() else path.parent
    marker = folder / MANIFEST if (folder / MANIFEST).is_file() else folder / "metrics.json"
    if not marker.is_file():
        raise SystemExit(
            f"error: {flag} {path}: not a run folder of {script} (no {MANIFEST} or metrics.json)"
        )
    made_by = read_json(marker).get("script") if marker.is_file() else None
    if made_by != script:
        raise SystemExit(
            f"error: {flag} {path}: a run of {made_by or 'an unknown script'}, not of {script}"
        )
    missing = [name for name in need if not (folder / name).is_file()]
    if missing:
        raise SystemExit(
            f"error: {flag} {path}: the run has no {', '.join(missing)} yet (not finished?)"
        )
    return folder


# ------------------------------------------------------------------------------ resumable fit
def load_run_model(script, path, flag="--model", need=("model.keras",), **options):
    """(run folder, its recorded settings, its model.keras loaded) for `predict`-like readers; one
    line if any of them is not there or the model does not load."""
    import zipfile

    import keras

    folder = find_run(script, path, flag, need)
    manifest = folder / MANIFEST
    settings = read_json(manifest).get("settings", {}) if manifest.is_file() else {}
    try:
        model = keras.saving.load_model(folder / "model.keras", **options)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise SystemExit(
            f"error: {flag} {path}: cannot load {folder / 'model.keras'} ({reason})"
        ) from None
    return folder, settings, model


def run_job(script, args, job, runtime=()):
    """The frame of a training job: the run folder for --out (a finished run is reported and its
    metrics returned; other settings are refused), then `job(args, run, placement)` on --devices.
    `runtime`: flags left out of the settings, e.g. "epochs" where it is only the stopping point."""
    from common import devices

    run = open_run(script, args.out, settings_of(args, runtime), runtime)
    if run.finished:
        return run.report_finished()
    with devices.placement(args.devices, args.mixed_precision) as placement:
        return job(args, run, placement)


def _load_weights(model, path):
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # the file holds the optimizer state too
    model.load_weights(path)


def _save_weights(model, path):
    with runs.atomic_path(path) as temporary:
        model.save_weights(temporary)


def _build_callback_class():
    import keras

    class ResumableTraining(keras.callbacks.Callback):
        """Epoch-level resume. At each epoch's end: the weights, then state.json (the commit point:
        epoch, history rows, best epoch, patience), then history.csv rendered from it."""

        def __init__(self, folder, monitor=None, mode="max", patience=None, name=""):
            super().__init__()
            suffix = f"_{name}" if name else ""
            self.folder, self.monitor, self.mode, self.patience = (
                Path(folder),
                monitor,
                mode,
                patience,
            )
            self.backup = self.folder / f"backup{suffix}"
            self.history_path = self.folder / f"history{suffix}.csv"
            self.state = self.read_state()

        def read_state(self):
            path = self.backup / "state.json"
            return (
                json.loads(path.read_text())
                if path.is_file()
                else {"epoch": 0, "history": [], "best": None, "wait": 0, "stopped": False}
            )

        @property
        def done(self):
            return self.state["stopped"]

        def better(self, value, best):
            return best is None or (value > best if self.mode == "max" else value < best)

        def on_train_begin(self, logs=None):
            if self.state["epoch"]:
                _load_weights(self.model, self.backup / self.state["weights"])
                self.model._initial_epoch = self.state["epoch"]
            self.write_history()

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {}, seconds=time.perf_counter() - self.started)
            state = self.state
            weights = f"epoch-{epoch + 1}.weights.h5"
            _save_weights(self.model, self.backup / weights)
            value = float(logs[self.monitor]) if self.monitor else None
            best = state["best"]
            if self.monitor is None or self.better(value, best and best["value"]):
                best, wait = {"epoch": epoch + 1, "value": value, "weights": weights}, 0
            else:
                wait = state["wait"] + 1
            stopped = bool(self.patience) and wait >= self.patience
            history = [
                *state["history"],
                {"epoch": epoch, **{k: float(v) for k, v in logs.items()}},
            ]
            self.state = {
                "epoch": epoch + 1,
                "weights": weights,
                "best": best,
                "wait": wait,
                "stopped": stopped,
                "history": history,
            }
            runs.write_json(self.backup / "state.json", self.state)
            for stale in self.backup.glob("epoch-*.weights.h5"):
                if stale.name not in (weights, best["weights"]):
                    stale.unlink()
            self.write_history()
            if stopped:
                print(
                    f"no better {self.monitor} for {self.patience} epochs: "
                    f"stopping after epoch {epoch + 1}"
                )
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            self.model._initial_epoch = (
                None  # a later fit of the same model starts at its own epoch 0
            )

        def write_history(self):
            rows = self.state["history"]
            if not rows:
                return
            with (
                runs.atomic_path(self.history_path) as temporary,
                open(temporary, "w", newline="") as handle,
            ):
                writer = csv.DictWriter(handle, fieldnames=list(rows[-1]), restval="")
                writer.writeheader()
                writer.writerows(rows)

        def load_best(self, model=None):
            """Give the model the best epoch's weights (the last epoch's without a monitor)."""
            if self.state["best"]:
                _load_weights(model or self.model, self.backup / self.state["best"]["weights"])

        def history(self):
            rows = self.state["history"]
            return {
                name: [row.get(name, np.nan) for row in rows]
                for name in (rows[-1] if rows else {})
                if name != "epoch"
            }

    return ResumableTraining


def fit(
    model,
    *data,
    folder,
    epochs,
    monitor=None,
    mode="max",
    patience=None,
    name="",
    callbacks=(),
    **fit_arguments,
):
    """`model.fit` that resumes from `folder`, then loads the best epoch's weights.

    Returns (history {column: [value per epoch, over every run]}, the tracker: `.state["best"]` says
    which epoch was kept). `name` separates several fits in one folder (stages, experiments).
    """
    tracker = _build_callback_class()(folder, monitor, mode, patience, name)
    if tracker.state["epoch"] < epochs and not tracker.done:
        model.fit(
            *data,
            epochs=epochs,
            callbacks=[*callbacks, tracker],
            verbose=runs.fit_verbosity(),
            **fit_arguments,
        )
    elif tracker.state["epoch"]:
        print(
            f"{folder}: training{f' ({name})' if name else ''} finished earlier at epoch "
            f"{tracker.state['epoch']}; continuing after it"
        )
    tracker.load_best(model)
    return tracker.history(), tracker


# --------------------------------------------------------- model selection every N batches
def _build_evaluator_class():
    import keras

    class Evaluator(keras.callbacks.Callback):
        """Model selection every `every` training batches (0: epoch ends only) and at each epoch
        end, beside `fit(..., monitor=None)`: `score(model)` is a number, higher is better. A better
        model goes to backup/selected-K.keras, then selection.json (the commit point) names it and
        logs every evaluation with the examples seen (batches × `batch_size`, at most `per_epoch` an
        epoch) under the key `seen`. The best carries across a resume, so a resumed run never
        replaces it by a worse one; the evaluations of an epoch trained again are marked
        "interrupted"."""

        def __init__(self, score, folder, every=0, batch_size=1, per_epoch=0, seen="examples"):
            super().__init__()
            self.score, self.every, self.seen = score, every, seen
            self.batch_size, self.per_epoch = batch_size, per_epoch
            self.folder, self.path = Path(folder), Path(folder) / "selection.json"
            fresh = {"best": None, "log": []}
            self.state = read_json(self.path) if self.path.is_file() else fresh
            self.batches, self.resumed = 0, False

        def evaluate(self, epoch, where):
            score, best = float(self.score(self.model)), self.state["best"]
            seen = min(self.batches * self.batch_size, (epoch + 1) * self.per_epoch)
            entry = {"epoch": epoch + 1, "at": where, self.seen: seen, "selection_accuracy": score}
            if improved := best is None or score > best["selection_accuracy"]:
                best = {**entry, "file": f"selected-{len(self.state['log']) + 1}.keras"}
                runs.save_model(self.model, self.folder / "backup" / best["file"])
            self.state = {"best": best, "log": [*self.state["log"], entry]}
            runs.write_json(self.path, self.state)
            for stale in (self.folder / "backup").glob("selected-*.keras"):
                if stale.name != best["file"]:
                    stale.unlink()
            saved = " (best, saved)" if improved else ""
            print(
                f"\nselection accuracy {score:.2f} after epoch {epoch + 1} {where}{saved}",
                flush=True,
            )
            return score

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.every and self.batches % self.every == 0 and batch + 1 < self.params["steps"]:
                self.evaluate(self.current_epoch, f"batch {batch + 1}")

        def on_epoch_begin(self, epoch, logs=None):
            # counted from the epoch's start, as if the run had not stopped
            self.current_epoch, self.batches = epoch, epoch * self.params["steps"]
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

    return Evaluator


def __getattr__(name):
    """`runfolder.Evaluator`, built on first use, so that importing this module imports no Keras."""
    if name != "Evaluator":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()["Evaluator"] = _build_evaluator_class()
    return globals()["Evaluator"]
