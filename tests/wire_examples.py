"""The byte-exact provider wire examples the fakes and adapters are checked against.

They live in the shared folder beside the repository (../shared/providers/examples), which the
project reads but does not copy; SWITCHBOARD_WIRE_EXAMPLES points elsewhere. Without the
folder, every test that replays an example skips for that one reason (tests/run says so up
front); a folder that lacks one example skips its tests naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path(
    os.environ.get("SWITCHBOARD_WIRE_EXAMPLES", ROOT.parent / "shared" / "providers" / "examples")
)


def example_path(provider: str, name: str) -> Path:
    if not EXAMPLES.is_dir():
        # One reason for all of them: `pytest -rs` reports them as one line, with their count.
        pytest.skip(f"the wire examples are not at {EXAMPLES} (set SWITCHBOARD_WIRE_EXAMPLES)")
    path = EXAMPLES / provider / name
    if not path.exists():
        pytest.skip(f"wire example {path} is not available (set SWITCHBOARD_WIRE_EXAMPLES)")
    return path


def example_bytes(provider: str, name: str) -> bytes:
    return example_path(provider, name).read_bytes()
