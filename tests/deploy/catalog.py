"""docs/metrics.md's catalog table, read back for tests."""

from __future__ import annotations

from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "docs" / "metrics.md"


class Entry(msgspec.Struct, frozen=True):
    name: str
    type: str
    labels: frozenset[str]
    unit: str
    processes: frozenset[str]
    meaning: str


def read_catalog() -> dict[str, Entry]:
    """Metric name -> entry, from the rows of the catalog table (`| \\`name\\` | type | ...`)."""
    entries = {}
    for line in CATALOG.read_text(encoding="utf-8").splitlines():
        if not line.startswith(("| `switchboard_", "| `process_")):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name, kind, labels, unit, process, meaning = cells[:6]
        where = {"front door", "worker"} if process == "both" else {process.split(" (")[0]}
        entries[name.strip("`")] = Entry(
            name=name.strip("`"),
            type=kind,
            labels=frozenset(label.strip() for label in labels.split(",") if label.strip()),
            unit=unit,
            processes=frozenset(where),
            meaning=meaning,
        )
    return entries
