"""docs/providers/README.md's provider table says what the registry and adapters do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workers.providers import PROVIDERS, adapter_class
from workers.providers.openai import OpenAIAdapter

DOCS = Path(__file__).resolve().parents[3] / "docs" / "providers"
README = DOCS / "README.md"
COLUMNS = [
    "Provider",
    "Model prefix",
    "Key env vars",
    "Endpoints",
    "Stream",
    "Tools",
    "Vision",
    "Embeddings",
    "Refused parameters",
]
NATIVE_DOCS = {"anthropic", "gemini", "bedrock", "ollama", "vertex_ai"}


def table() -> dict[str, dict[str, str]]:
    lines = README.read_text().splitlines()
    start = lines.index("| " + " | ".join(COLUMNS) + " |")
    rows: dict[str, dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(COLUMNS), line
        rows[cells[0].strip("`")] = dict(zip(COLUMNS, cells, strict=True))
    return rows


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_every_registered_provider_has_one_row_in_registry_order():
    assert list(table()) == list(PROVIDERS)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_row_matches_the_adapter(provider):
    row = table()[provider]
    cls = adapter_class(provider)
    assert names(row["Model prefix"])[0].startswith(f"{provider}/")
    assert names(row["Key env vars"]) == list(cls.defaults.api_key_env)
    assert row["Embeddings"] == ("yes" if cls.supports_embeddings else "no")
    assert ("embeddings" in row["Endpoints"]) == cls.supports_embeddings
    if provider in NATIVE_DOCS:
        link = f"({provider}.md#"
        assert link in row["Refused parameters"]
        anchor = row["Refused parameters"].split(link)[1].split(")")[0]
        headings = (DOCS / f"{provider}.md").read_text().splitlines()
        slugs = {
            re.sub(r"[^a-z0-9 -]", "", h.lstrip("#").strip().lower()).replace(" ", "-")
            for h in headings
            if h.startswith("#")
        }
        assert anchor in slugs
    else:
        # The OpenAI family refuses exactly its table (value-independent), listed in full.
        assert issubclass(cls, OpenAIAdapter)
        listed = [n for n in names(row["Refused parameters"]) if "reasoning_effort" not in n]
        assert sorted(listed) == sorted(cls.refused_params)
        assert ("tools" in cls.refused_params) == (row["Tools"] == "no")
