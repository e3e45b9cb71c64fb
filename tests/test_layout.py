"""Issue #18's shape, checked for all seven scripts: ≤ 400 lines at ≤ 100 columns, the bare command runs the
main job, and one --quick rule (a flag given explicitly always wins)."""

import importlib
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
SCRIPTS = (
    "fashion_mnist_mobilenet",
    "captcha_xception",
    "cloze_lm",
    "dogs_finetune",
    "custom_loss",
    "rnn_saliency",
    "simpler_wordvec",
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_reads_in_one_sitting(script):
    lines = (REPOSITORY / f"{script}.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 400
    assert max(len(line) for line in lines) <= 100


@pytest.mark.parametrize("script", SCRIPTS)
def test_bare_command_is_the_main_job_and_quick_changes_defaults_only(script):
    module = importlib.import_module(script)
    assert module.parse_arguments([]).command == "train"
    assert module.parse_arguments(["--quick", "--epochs", "3"]).epochs == 3
    assert module.parse_arguments(["--epochs", "3", "--quick"]).epochs == 3
