"""What every script repeats: CLI flags, seeding, the output folder, atomic writes, `--weights`,
plots."""

import argparse
import contextlib
import csv
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _number(kind, low, high=None, closed=True, what="a positive number"):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if (
            not (value >= low if closed else value > low)
            or (high is not None and value > high)
            or value != value
        ):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


# argparse types: a bad value is one line from argparse (exit 2) before anything runs.
positive_int = _number(int, 1, what="a positive integer")
non_negative_int = _number(int, 0, what="an integer ≥ 0")
positive_float = _number(float, 0, closed=False, what="a positive number")
non_negative_float = _number(float, 0, what="a number ≥ 0")
probability = _number(float, 0, 1, what="a number in [0, 1]")


def add_standard_arguments(
    parser, *, epochs, batch_size, seed=2017, weights=None, data_help=None, batch_help=None
):
    """The flags every script shares, with the same names everywhere. `weights=None` leaves out
    --weights."""
    parser.add_argument(
        "--data", default=None, help=data_help or "where the data lives (see README)"
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=epochs, help="training epochs (default %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=batch_size,
        help=batch_help or "batch size (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=seed, help="random seed (default %(default)s)")
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default runs/<script>/<timestamp>); "
        "rerun with the same --out to resume",
    )
    if weights is not None:
        parser.add_argument(
            "--weights",
            default=weights,
            help="auto | imagenet | none | PATH to a weights file (default %(default)s): auto uses "
            "ImageNet weights where they can be had and random init otherwise",
        )
    parser.add_argument(
        "--quick", action="store_true", help="a real, small run that finishes in minutes on a CPU"
    )
    return parser


def parse_command(argv, main, verbs=None, quick=None):
    """One command grammar for every script: `SCRIPT [flags]` runs the main job (parser `main`;
    `train` may name it), `SCRIPT VERB [flags]` another job (`verbs`: {name: parser}). With
    `--quick`, `quick` ({flag dest: value}, or a function of the command giving one) replaces the
    defaults only, so a flag given explicitly always wins. Returns the namespace with `command` set
    ("train" for the main job)."""
    argv, verbs = list(sys.argv[1:] if argv is None else argv), dict(verbs or {})
    command = argv.pop(0) if argv and (argv[0] in verbs or argv[0] == "train") else "train"
    parser = verbs.get(command, main)
    if verbs and not main.epilog:
        main.epilog = (
            "other jobs: "
            + "; ".join(f"{name}: {verb.description}" for name, verb in verbs.items())
            + f". See {main.prog} VERB --help."
        )
    defaults = quick(command) if callable(quick) else quick
    if defaults and getattr(parser.parse_known_args(argv)[0], "quick", False):
        dests = {action.dest for action in parser._actions}
        parser.set_defaults(**{name: value for name, value in defaults.items() if name in dests})
    args = parser.parse_args(argv)
    args.command = command
    return args


def command_line(main):
    """Run `main()` as a command: Ctrl-C is one line and exit status 130, and the run folder stays
    resumable."""
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None


def seed_everything(seed):
    """Seed Python, NumPy and the Keras backend; return a NumPy Generator for data-side
    randomness."""
    import keras

    keras.utils.set_random_seed(seed)
    return np.random.default_rng(seed)


def run_directory(script_name, out=None):
    """The run's output folder: `out` if given (reused for resuming), else
    runs/<script>/<timestamp>."""
    path = Path(out) if out else Path("runs") / script_name / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` and move it into place only if the block succeeds.

    A crash or Ctrl-C never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)  # Keras checks for ".weights.h5", not just ".h5"
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name[: -len(suffix) or None]}.", suffix=suffix, dir=path.parent
    )
    os.close(handle)
    try:
        yield Path(temporary)
        # mkstemp makes the file private (0600); give it the usual permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def strict(value):
    """`value` with NaN and ±inf replaced by None, so json.dumps(allow_nan=False) accepts it."""
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def write_json(path, payload):
    """Write strict JSON atomically (NumPy values become plain ones; NaN and ±inf become null)."""

    def default(value):
        if isinstance(value, (np.generic, np.ndarray)):
            return strict(value.tolist())
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"cannot write {type(value).__name__} to JSON")

    with atomic_path(path) as temporary:
        temporary.write_text(
            json.dumps(
                strict(payload), indent=2, ensure_ascii=False, default=default, allow_nan=False
            )
            + "\n",
            encoding="utf-8",
        )


def environment():
    """Backend, versions and machine, for metrics.json."""
    import keras

    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }


def fit_verbosity():
    """Keras progress bars on a terminal, one line per epoch in a log file or CI."""
    return 1 if sys.stdout.isatty() else 2


def load_backbone(builder, weights, expected=None, **kwargs):
    """Build a keras.applications model with `--weights auto|imagenet|none|PATH`; return (model,
    weights_used).

    auto: ImageNet weights from the Keras cache or a download, else random init with a one-line
    warning.
    imagenet: the same, but failing to get them is an error naming --weights none.
    PATH: a local file; one that does not fit the model exits with one line (`expected` says what
    fits).
    """
    if weights in (None, "none"):
        return builder(weights=None, **kwargs), "none"
    if weights not in ("auto", "imagenet"):
        if not Path(weights).is_file():
            raise SystemExit(
                f"error: --weights {weights}: no such file (use auto, imagenet, none or a path)"
            )
        # a wrong file (another width, not HDF5, truncated, another model's) is one line, not a
        # traceback
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return builder(weights=str(weights), **kwargs), str(weights)
        except Exception as error:
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            raise SystemExit(
                f"error: --weights {weights}: not a weights file for this {builder.__name__}"
                f"{f' ({expected})' if expected else ''}: {reason}"
            ) from None
    try:
        return builder(weights="imagenet", **kwargs), "imagenet"
    except Exception as error:  # offline, or the cache is unreadable
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
        if weights == "imagenet":
            raise SystemExit(
                f"error: could not load ImageNet weights for {builder.__name__} ({reason}); "
                "pass --weights none to train from scratch, or --weights PATH to a local file"
            ) from None
        print(
            f"warning: ImageNet weights for {builder.__name__} unavailable ({reason}); "
            "training from random init",
            file=sys.stderr,
        )
        return builder(weights=None, **kwargs), "none"


def read_history(path):
    """A CSVLogger history.csv as {column: [values]}, one row per epoch (a row repeated by a resume
    keeps its last copy)."""
    if not Path(path).is_file():
        return {}
    with open(path, newline="") as handle:
        rows = {int(row["epoch"]): row for row in csv.DictReader(handle)}
    columns = [name for name in next(iter(rows.values()), {}) if name != "epoch"]
    return {name: [float(rows[epoch][name]) for epoch in sorted(rows)] for name in columns}


def save_model(model, path):
    """`model.save` to `path` atomically: no half-written .keras file after a crash."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def figure_row(columns, width=4.0, height=3.2):
    """(pyplot, figure, axes): `columns` subplots side by side, drawn with Agg (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(width * columns, height), squeeze=False)
    return plt, figure, axes[0]


def save_figure(figure, path, dpi=100):
    """tight_layout, an atomic PNG at `path`, the figure closed."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi)
    plt.close(figure)


def plot_history(history, path, title=""):
    """Save learning curves (every metric with its val_ counterpart) as a PNG."""
    names = [name for name in history if not name.startswith("val_")]
    _, figure, axes = figure_row(len(names))
    for axis, name in zip(axes, names):
        epochs = np.arange(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    figure.suptitle(title)
    save_figure(figure, path)
