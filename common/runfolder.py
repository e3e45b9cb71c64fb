"""The run-folder contract every script follows, so that rerunning a command is always safe.

- `open_run(script, out, settings)`: a run folder records the settings that define it (run.json). The same
  command again resumes an interrupted run, or, when metrics.json exists, reports the finished run and trains
  nothing; different settings get one line naming them, and nothing is touched.
- `fit(...)`: Keras `fit` that resumes at the last finished epoch, keeps the best epoch over every epoch
  (across resumes), writes history.csv with no repeated epoch, and stops on `patience`. One state file is the
  commit point of each epoch, so a kill at any moment leaves a consistent folder.
- `find_run(script, path)`: for readers (predict, explain, analyses): a run folder, or a file in one, made by
  this script; anything else is one line.
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
    """The flags that define a run as plain JSON values (paths and tuples become strings and lists)."""
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
        """Create the folder and record what defines the run; call it once the inputs have been checked."""
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
            f"{self.path} holds a finished run of {self.script}: results in {self.path / 'metrics.json'} "
            "(pass a new --out to train again)"
        )
        return read_json(self.path / "metrics.json")

    def finish(self, metrics):
        """Write metrics.json, marked with the script, as the run's last file; drop the resume state."""
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


def open_run(script, out, settings):
    """The run folder for `--out` (default runs/<script>/<timestamp>), checked against what it already holds."""
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
        before = recorded.get("settings", {})
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
    """The run folder of `path` (the folder or a file in it) if `script` made it and it holds `need`."""
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


# ------------------------------------------------------------------------------------------ resumable fit
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
        """Epoch-level resume. At each epoch's end: the weights, then state.json (the commit point: epoch,
        history rows, best epoch, patience), then history.csv rendered from it."""

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
                    f"no better {self.monitor} for {self.patience} epochs: stopping after epoch {epoch + 1}"
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

    Returns (history {column: [value per epoch, over every run]}, the tracker: `.state["best"]` says which
    epoch was kept). `name` separates several fits in one folder (stages, experiments).
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
