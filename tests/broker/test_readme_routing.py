"""README's Routing section says what the code does: every strategy is listed, every config
key it shows is a real setting (not one the loader drops as unimplemented), and its SDK
example runs."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.config.loader import load_config_text
from workers.settings import RouterSettings
from workers.settings.models import LiteLLMParams, ModelInfo
from workers.settings.routing import RoutingStrategy
from workers.testing.server import FakeUpstream

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_API_BASE = "http://127.0.0.1:9000/v1"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Routing\n")
    end = text.index("\n## ", start + 1)
    assert text[end:].startswith("\n## Providers\n")
    return text[start:end]


def code_block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", section(), flags=re.DOTALL)
    assert len(blocks) == 1, f"one {language} block expected in ## Routing"
    return str(blocks[0])


def test_every_strategy_is_documented() -> None:
    rows = [line for line in section().splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([a-z0-9-]+)`", row.split("|")[1])}
    assert listed == set(typing.get_args(RoutingStrategy))


def test_the_config_example_loads_and_every_key_is_implemented() -> None:
    text = code_block("yaml")
    config = load_config_text(text, {"OPENAI_API_KEY": "sk-test"})
    assert config.router_settings.routing_strategy == "least-busy"
    raw: dict[str, Any] = yaml.safe_load(text)
    assert set(raw["router_settings"]) <= set(RouterSettings.__struct_fields__)
    for entry in raw["model_list"]:
        assert set(entry["litellm_params"]) <= set(LiteLLMParams.__struct_fields__)
        assert set(entry.get("model_info", {})) <= set(ModelInfo.__struct_fields__)


def test_the_sdk_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    with FakeUpstream.in_thread() as fake:
        base = fake.base_url + "/v1"
        # Deployments without an api_base reach OpenAI's, here the fake.
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", base)
        code = code_block("python")
        assert EXAMPLE_API_BASE in code
        exec(compile(code.replace(EXAMPLE_API_BASE, base), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'deployment': 'gpt[" in printed and "'attempts': 1" in printed
