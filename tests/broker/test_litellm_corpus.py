"""LiteLLM-format configs (tests/configs/litellm/) pass `switchboard check` and load into a
worker's routing plan: a LiteLLM proxy config runs unchanged (issue #16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import load_config
from broker.config.check import check_config
from workers.providers import adapter_class
from workers.routing.plan import build_plan

CORPUS = Path(__file__).resolve().parents[1] / "configs" / "litellm"
# Files another file includes; they are checked as part of it.
INCLUDED = {"include_models.yaml"}
CONFIGS = sorted(p for p in CORPUS.glob("*.yaml") if p.name not in INCLUDED)
# What a LiteLLM user's shell would hold; none of it is reached.
ENVIRON = {
    name: "test-value"
    for name in (
        "OPENAI_API_KEY ANTHROPIC_API_KEY AZURE_API_KEY GROQ_API_KEY OPENROUTER_API_KEY "
        "GEMINI_API_KEY MISTRAL_API_KEY HF_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY "
        "REDIS_PASSWORD SWITCHBOARD_MASTER_KEY LANGFUSE_PROJECT1_PUBLIC"
    ).split()
} | {
    "AZURE_API_BASE": "https://example.openai.azure.com",
    "REDIS_HOST": "localhost",
    "REDIS_PORT": "6379",
}


def test_the_corpus_has_at_least_fifteen_configs() -> None:
    assert len(CONFIGS) >= 15


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.name))
def test_every_corpus_config_passes_check(path: Path) -> None:
    status, lines = check_config(path, ENVIRON)
    assert status == 0, "\n".join(lines)
    assert "OK, `switchboard up` would start" in lines[-1]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.name))
def test_every_corpus_config_builds_a_routing_plan_with_an_adapter_per_deployment(
    path: Path,
) -> None:
    config = load_config(path, ENVIRON)
    plan = build_plan(config.deployments, config.model_list, config.router_settings)
    assert plan is not None
    for group in config.deployments.values():
        for deployment in group:
            assert adapter_class(deployment.provider).provider == deployment.provider
