"""The byte-exact provider wire examples the fakes and adapters are checked against.

They live in the shared folder beside the repository (../shared/providers/examples), which the
project reads but does not copy; SWITCHBOARD_WIRE_EXAMPLES points elsewhere. A test whose
example is missing skips and names the path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path(
    os.environ.get("SWITCHBOARD_WIRE_EXAMPLES", ROOT.parent / "shared" / "providers" / "examples")
)


def example_path(provider: str, name: str) -> Path:
    path = EXAMPLES / provider / name
    if not path.exists():
        pytest.skip(f"wire example {path} is not available (set SWITCHBOARD_WIRE_EXAMPLES)")
    return path


def example_bytes(provider: str, name: str) -> bytes:
    return example_path(provider, name).read_bytes()
