"""docs/config.md is what the typed config says (regenerate with
`python -m broker.config.reference > docs/config.md`)."""

from __future__ import annotations

from pathlib import Path

from broker.config.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_the_config_reference_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/config.md is stale: run `python -m broker.config.reference > docs/config.md`"
    )


def test_the_reference_names_every_section_and_a_documented_key() -> None:
    text = render()
    for section in ("router_settings", "litellm_settings", "general_settings"):
        assert f"## `{section}`" in text
    assert "## `switchboard_settings`" in text and "## `model_list[].litellm_params`" in text
    assert "| `enable_tag_filtering` | `bool` | `False` |" in text
    assert "`use_redis_transaction_buffer`" in text
