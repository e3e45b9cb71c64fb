"""Shared fixtures: the real data beside the repository, and the repository root on sys.path."""

import os
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data (see its README); tests that need it skip, saying why, only where it is absent."""
    path = Path(os.environ.get("SHARED_DATA", REPOSITORY.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(
            f"real data folder {path} is absent (set SHARED_DATA or place ../shared/data beside the repo)"
        )
    return path


def _snapshot(folder):
    if folder is None or not Path(folder).exists():
        return None
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(Path(folder).rglob("*"))
    }


@pytest.fixture
def refuses(capsys):
    """refuses(call, match=..., untouched=FOLDER): the bad-input contract (common/runfolder.py, README).

    `call()` must exit non-zero with one line (a SystemExit message, or argparse's usage + error), never a
    traceback, and leave `untouched` (a run folder or input folder) exactly as it was.
    """
    import re

    def check(call, match=None, untouched=None):
        before = _snapshot(untouched)
        with pytest.raises(SystemExit) as raised:
            call()
        code = raised.value.code
        assert code not in (0, None), "exit status 0 on bad input"
        message = (
            code if isinstance(code, str) else capsys.readouterr().err.strip().splitlines()[-1]
        )
        assert "\n" not in message.strip(), f"more than one line: {message!r}"
        if match:
            assert re.search(match, message), f"{match!r} not in {message!r}"
        assert _snapshot(untouched) == before, "the folder changed"
        return message

    return check


@pytest.fixture(scope="session")
def interrupt_at():
    """interrupt_at(epoch): a Keras callback that presses Ctrl-C (raises KeyboardInterrupt) at the
    start of epoch `epoch` (0-based), to check that a run resumes after it."""
    import keras

    class Interrupt(keras.callbacks.Callback):
        def __init__(self, epoch):
            super().__init__()
            self.epoch = epoch

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == self.epoch:
                raise KeyboardInterrupt

    return Interrupt
