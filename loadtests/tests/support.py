"""What the load-test tests share: where the project is, and the venv's load tools."""

import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tool(name: str, install: str) -> str:
    """A load tool from the venv; missing means the suite was installed without it, which is an error."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in this venv: run `{install}`")
    return str(path)
