"""The demo's master key: made once in `up --demo`'s data directory, kept there (0600), so
the demo has keys, budgets, spend and a console like a production gateway, and a newcomer
finds the key in a file rather than in a log."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEMO_KEY_FILE = "demo-master-key"


def demo_master_key(directory: Path) -> tuple[str, Path]:
    """The key in `directory`'s key file, made first when there is none; and the file."""
    path = directory / DEMO_KEY_FILE
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key, path
    key = "sk-demo-" + secrets.token_urlsafe(24)
    # O_EXCL: two `up --demo` starting at once in one directory agree on the first key.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip(), path
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    return key, path
