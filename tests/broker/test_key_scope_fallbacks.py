"""A key's model list bounds every route (issue #13, item 6): a fallback, whichever rule
names it and whether the request named its group or an alias of it, never serves a caller
from a group outside its key's scope. The skip is counted; the master key still falls back."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import generate_latest

from broker.config.loader import load_config_text
from tests.broker.harness import FAST_CLAIMS, service
from tests.broker.routing_setup import HELLO, Reply, deployment
from tests.scrape import Scrape
from workers.testing.server import FakeUpstream

MASTER = "sk-master-scope-test"
TEAM = "sk-team-scope-0123456789"  # models: gpt and the failing group (or its alias)
WIDE = "sk-wide-scope-0123456789"  # models: the same and claude
SKIPPED = "switchboard_worker_fallbacks_skipped_total"

# rule -> (the failing deployment's scenario, the error status the client then gets)
RULES: dict[str, tuple[str, int]] = {
    "fallbacks": ("m~status=500", 500),
    "context_window_fallbacks": ("m~status=context_window", 400),
    "content_policy_fallbacks": ("m~status=content_filter", 400),
    "default_fallbacks": ("m~status=500", 500),
    "wildcard": ("m~status=500", 500),  # a `*` rule: every group's fallback
}


def scope_config(fake: FakeUpstream, namespace: str, rule: str, requested: str) -> Any:
    base = fake.base_url + "/v1"
    scenario, _ = RULES[rule]
    router: dict[str, Any] = {
        "num_retries": 0,
        "model_group_alias": {"fb-alias": "gpt-fb"},
    }
    if rule == "default_fallbacks":
        router["default_fallbacks"] = ["claude"]
    elif rule == "wildcard":
        router["fallbacks"] = [{"*": ["claude"]}]
    else:
        router[rule] = [{"gpt-fb": ["claude"]}]
    document = {
        "model_list": [
            deployment("gpt", base, "m"),
            deployment("gpt-fb", base, scenario),
            deployment("claude", base, "claude-model"),
        ],
        "router_settings": router,
        "general_settings": {"master_key": MASTER},
        "switchboard_settings": {
            "namespace": namespace,
            **FAST_CLAIMS,
            "api_keys": [
                {"alias": "team", "key": TEAM, "models": ["gpt", requested]},
                {"alias": "wide", "key": WIDE, "models": ["gpt", requested, "claude"]},
            ],
        },
    }
    return load_config_text(yaml.safe_dump(document))


async def ask(session: aiohttp.ClientSession, url: str, key: str, model: str) -> Reply:
    body = {"model": model, "messages": HELLO}
    headers = {"Authorization": f"Bearer {key}"}
    async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as response:
        return Reply(response.status, response.headers, await response.json(content_type=None))


@pytest.mark.parametrize("requested", ["gpt-fb", "fb-alias"])
@pytest.mark.parametrize("rule", list(RULES))
async def test_a_fallback_outside_the_key_scope_is_skipped_and_counted(
    fake: FakeUpstream, namespace: str, rule: str, requested: str
) -> None:
    _, status = RULES[rule]
    config = scope_config(fake, namespace, rule, requested)
    async with service(config) as ([door], [worker]), aiohttp.ClientSession() as session:
        team = await ask(session, door.url, TEAM, requested)
        claude_after_team = fake.state.model_counts.get("claude-model", 0)
        master = await ask(session, door.url, MASTER, requested)
        wide = await ask(session, door.url, WIDE, requested)
    # The team key gets gpt-fb's own error: claude, outside its scope, was never asked.
    assert (team.status, team.deployment, team.fallbacks) == (status, "gpt-fb[0]", "0"), team.body
    assert claude_after_team == 0
    counted = Scrape(generate_latest(worker.worker.metrics.registry).decode())
    labels = {"model_group": "gpt-fb", "fallback_group": "claude", "reason": "key_scope"}
    assert counted.value(SKIPPED, **labels) == 1
    # The master key, and a key whose scope includes claude, still fall back.
    assert (master.status, master.deployment, master.fallbacks) == (200, "claude[0]", "1")
    assert (wide.status, wide.deployment, wide.fallbacks) == (200, "claude[0]", "1")
    assert fake.state.model_counts["claude-model"] == 2
