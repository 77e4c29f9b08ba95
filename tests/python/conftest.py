# Shared settings of the pyhashhop pytest suite: where the CLI is, and whether a missing optional part
# (CLI, torch, transformers) fails the run (PYHASHHOP_TEST_STRICT=1, as `make test` sets) or skips.
import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STRICT = os.environ.get("PYHASHHOP_TEST_STRICT") == "1"


def need(module: str):
    """Imports an optional dependency, or skips (fails under STRICT, where CI promised to install it)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if STRICT:
            pytest.fail(f"{module} is required under PYHASHHOP_TEST_STRICT=1: {e}")
        pytest.skip(f"{module} not installed")


@pytest.fixture(scope="session")
def cli() -> Path:
    path = Path(os.environ.get("HASHHOP_CLI", REPO / "build" / "hashhop"))
    if not path.is_file():
        if STRICT:
            pytest.fail(f"hashhop CLI not found at {path} (build it, or set HASHHOP_CLI)")
        pytest.skip(f"hashhop CLI not found at {path}")
    return path
