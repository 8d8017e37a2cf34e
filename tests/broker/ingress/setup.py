"""The service the ingress API suites (/v1/messages, /v1/responses) run against: a model
group per (provider, scenario) on the fake upstream, for the provider families the issue
names (#18): OpenAI, Azure, Anthropic, Gemini, Bedrock (Converse) and an OpenAI-compatible
one (Groq)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from broker.config.loader import load_config_text
from tests.broker.harness import service
from tests.broker.providers_setup import AWS_CONFIG_ENV, TARGETS, Group, config_text
from workers.testing.server import FakeUpstream

# Bedrock's groups are pinned to Converse (`bedrock/converse/<id>`, LiteLLM's route prefix),
# so the suites test the translation there; Claude on Bedrock natively (InvokeModel) is
# `bedrock-claude` (test_messages_bedrock_native.py).
BEDROCK_CLAUDE = next(t for t in TARGETS if t.provider == "bedrock")
INGRESS_TARGETS = [
    t._replace(model=t.model.replace("bedrock/", "bedrock/converse/", 1))
    for t in TARGETS
    if t.provider in ("openai", "azure", "anthropic", "gemini", "bedrock", "groq")
]
INGRESS_IDS = [t.provider for t in INGRESS_TARGETS]
SCENARIOS = {
    "": "",
    "-tools": "~tools=2",
    "-429": "~status=429~retry_after=3",
    # The delay lets the first chunks leave before the error (test_provider_conformance).
    "-broken": "~stream_error_after=2~chunk_delay=0.1",
    # The provider reports a prompt that partly came from its cache (test_cache_usage.py).
    "-cached": "~cached=4",
    # The provider thinks (when asked) before it answers (test_reasoning_translated.py).
    "-thinking": "~reasoning=8",
}
# The suites test the translation on every provider: OpenAI's groups are kept on it
# (`responses_api: translate`); `openai-native` serves /v1/responses natively, the default
# (test_responses_native.py).
TRANSLATED = {"responses_api": "translate"}
GROUPS = (
    [
        Group(
            target.provider + suffix,
            target,
            directives,
            TRANSLATED if target.provider == "openai" else {},
        )
        for target in INGRESS_TARGETS
        for suffix, directives in SCENARIOS.items()
    ]
    + [
        Group("bedrock-claude" + suffix, BEDROCK_CLAUDE, directives)
        for suffix, directives in SCENARIOS.items()
    ]
    + [
        Group(
            "openai-native" + suffix,
            next(t for t in INGRESS_TARGETS if t.provider == "openai"),
            directives,
            {},  # native: the default for OpenAI
        )
        for suffix, directives in (("", ""), ("-tools", "~tools=1"))
    ]
)
TIMEOUT_S = 20


@contextlib.asynccontextmanager
async def gateway(fake: FakeUpstream, namespace: str) -> AsyncIterator[str]:
    """The in-process service's URL."""
    config = load_config_text(config_text(fake.base_url, namespace, GROUPS), AWS_CONFIG_ENV)
    async with service(config) as ([door], _):
        yield door.url
