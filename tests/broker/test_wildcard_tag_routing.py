"""Wildcard and tag routing through the service (issue #16): which deployment received what."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.broker.harness import service
from tests.broker.routing_setup import HELLO, deployment, routing_config
from workers.routing.tags import tagged_indices
from workers.routing.wildcards import Patterns, matched_part, upstream_model
from workers.testing.server import FakeUpstream

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


def wildcard_models(base: str) -> list[dict[str, Any]]:
    return [
        {
            "model_name": "*",
            "litellm_params": {"model": "openai/*", "api_base": base, "api_key": "sk-fake"},
            "model_info": {"id": "any-openai"},
        },
        {
            "model_name": "groq/*",
            "litellm_params": {"model": "groq/*", "api_base": base, "api_key": "sk-fake"},
            "model_info": {"id": "any-groq"},
        },
        deployment("pinned", base, "gpt-4o", id="pinned"),
    ]


async def test_wildcard_groups_send_the_matched_part_upstream(
    fake: FakeUpstream, namespace: str
) -> None:
    config = routing_config(namespace, wildcard_models(fake.base_url + "/v1"))
    async with service(config) as (doors, _):
        client = openai.AsyncOpenAI(base_url=doors[0].url + "/v1", api_key="sk-x")
        asked = {"gpt-4.1-mini": "any-openai", "groq/llama-3.1-8b-instant": "any-groq"}
        asked["pinned"] = "pinned"
        for model, expected in asked.items():
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=MESSAGES
            )
            assert raw.headers["x-switchboard-deployment"] == expected
        stream = await client.chat.completions.create(
            model="my-own-finetune", messages=MESSAGES, stream=True
        )
        assert [c async for c in stream]
        listed = [m.id async for m in client.models.list()]
        await client.close()
    received = [r.json["model"] for r in fake.state.requests]
    assert received == ["gpt-4.1-mini", "llama-3.1-8b-instant", "gpt-4o", "my-own-finetune"]
    # The patterns are not models: the names they serve that prices are known for are.
    assert "*" not in listed and "groq/*" not in listed
    assert {"pinned", "gpt-4o", "gpt-4.1-mini"} <= set(listed)


def tagged_models(base: str) -> list[dict[str, Any]]:
    return [
        deployment("shared", base, "team-a", id="team-a-model", tags=["teamA"]),
        deployment("shared", base, "team-b", id="team-b-model", tags=["teamB"]),
        deployment("shared", base, "everyone", id="default-model", tags=["default"]),
        deployment("strict", base, "team-a", id="strict-a", tags=["teamA"]),
    ]


async def ask_tagged(
    session: aiohttp.ClientSession, url: str, model: str, **fields: Any
) -> tuple[int, Any, str | None]:
    body = {"model": model, "messages": HELLO, **fields}
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        payload = await response.json(content_type=None)
        return response.status, payload, response.headers.get("x-switchboard-deployment")


async def test_tagged_requests_reach_only_their_teams_deployments(
    fake: FakeUpstream, namespace: str
) -> None:
    base = fake.base_url + "/v1"
    config = routing_config(namespace, tagged_models(base), enable_tag_filtering=True)
    async with service(config) as (doors, _), aiohttp.ClientSession() as session:
        url = doors[0].url
        for _ in range(6):
            assert (await ask_tagged(session, url, "shared", tags=["teamA"]))[2] == "team-a-model"
            by_metadata = await ask_tagged(session, url, "shared", metadata={"tags": ["teamB"]})
            assert by_metadata[2] == "team-b-model"
            assert (await ask_tagged(session, url, "shared"))[2] == "default-model"
            other = await ask_tagged(session, url, "shared", tags=["teamC"])
            assert other[2] == "default-model"
        status, payload, _ = await ask_tagged(session, url, "strict", tags=["teamB"])
        bad_status, bad_payload, _ = await ask_tagged(session, url, "shared", tags="teamA")
    assert status == 400
    assert payload["error"]["code"] == "no_deployment_for_tags"
    assert payload["error"]["param"] == "tags"
    assert bad_status == 400 and bad_payload["error"]["param"] == "tags"
    # Tags route; they are never sent upstream.
    assert all("tags" not in r.json for r in fake.state.requests)


async def test_without_tag_filtering_tags_do_not_restrict(
    fake: FakeUpstream, namespace: str
) -> None:
    config = routing_config(namespace, tagged_models(fake.base_url + "/v1"))
    async with service(config) as (doors, _), aiohttp.ClientSession() as session:
        seen = {(await ask_tagged(session, doors[0].url, "shared", tags=["teamA"]))[2]}
        for _ in range(30):
            seen.add((await ask_tagged(session, doors[0].url, "shared", tags=["teamA"]))[2])
    assert len(seen) > 1


@pytest.mark.parametrize(
    ("tags", "match_any", "expected"),
    [
        ((), True, [2]),
        (("a",), True, [0, 1]),
        (("a", "b"), True, [0, 1]),
        (("a", "b"), False, [1]),
        (("zzz",), True, [2]),
    ],
)
def test_tag_selection_follows_litellm(
    tags: tuple[str, ...], match_any: bool, expected: list[int]
) -> None:
    own = [("a",), ("a", "b"), ("default",)]
    assert tagged_indices("g", own, tags, match_any=match_any) == expected


def test_untagged_requests_use_every_deployment_when_none_is_default() -> None:
    assert tagged_indices("g", [("a",), ()], (), match_any=True) == [0, 1]


def test_the_most_specific_pattern_wins_and_fills_the_deployments_star() -> None:
    patterns = Patterns(["*", "anthropic/*", "anthropic/claude-*"])
    assert patterns.group_for("anthropic/claude-x") == "anthropic/claude-*"
    assert patterns.group_for("anthropic/other") == "anthropic/*"
    assert patterns.group_for("gpt-4o") == "*"
    assert matched_part("anthropic/*", "anthropic/") is None
    assert upstream_model("ft-*", "team/*", "team/abc") == "ft-abc"
