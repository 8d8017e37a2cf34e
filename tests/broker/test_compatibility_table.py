"""The README's LiteLLM compatibility table says what the loader does: each key it calls
implemented is a field (or a request default) of that section, each key it calls ignored is
accepted and reported as such (issue #16)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from broker.config.loader import Config, GeneralSettings
from broker.config.tree import _is_ignored
from workers.settings import LiteLLMParams, LiteLLMSettings, ModelInfo, RouterSettings
from workers.settings.section import Section

README = Path(__file__).resolve().parents[2] / "README.md"
SECTIONS: dict[str, type[Section]] = {
    "`model_list[].litellm_params`": LiteLLMParams,
    "`model_list[].model_info`": ModelInfo,
    "`router_settings`": RouterSettings,
    "`litellm_settings`": LiteLLMSettings,
    "`general_settings`": GeneralSettings,
    "top level": Config,
}
# Keys the loader handles before the Structs see them.
LOADER_KEYS: dict[type[Section], set[str]] = {Config: {"include"}}


def table() -> dict[str, tuple[list[str], list[str]]]:
    text = README.read_text(encoding="utf-8")
    rows: dict[str, tuple[list[str], list[str]]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in SECTIONS:
            implemented = re.findall(r"`([a-z_]+)`", cells[1].split("request defaults")[0])
            rows[cells[0]] = (implemented, re.findall(r"`([a-z_]+)`", cells[2]))
    return rows


def test_the_table_has_a_row_per_section() -> None:
    assert set(table()) == set(SECTIONS)


def test_implemented_keys_are_fields_and_ignored_keys_are_reported() -> None:
    for section, (implemented, ignored) in table().items():
        cls = SECTIONS[section]
        fields = {f.encode_name for f in msgspec.structs.fields(cls)} - cls.derived_fields
        fields |= LOADER_KEYS.get(cls, set())
        assert set(implemented) <= fields, (section, set(implemented) - fields)
        for key in ignored:
            assert key not in fields and _is_ignored(key, cls.litellm_ignored), (section, key)
