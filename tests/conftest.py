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
        pytest.skip(f"real data folder {path} is absent (set SHARED_DATA or place ../shared/data beside the repo)")
    return path
