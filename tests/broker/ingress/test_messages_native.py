"""/v1/messages to an Anthropic deployment is a native pass-through, proven byte for byte:
what the fake received equals what the client sent (the model aside), and what the client
received equals what the fake sends for that body (its message ids aside, which count up per
request), events and all. `anthropic-beta` reaches Anthropic and is refused, by name, for a
group with another provider unless drop_params."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import orjson

from broker.config.loader import load_config_text
from tests.broker.harness import service
from tests.broker.ingress.setup import TIMEOUT_S, gateway
from tests.broker.providers_setup import (
    AWS_CONFIG_ENV,
    TARGETS,
    Group,
    config_text,
    no_ambient_aws,  # noqa: F401 (autouse fixture)
)

# Everything a translation could lose: system blocks, cache_control on a message block and a
# tool, metadata, top_k, stop_sequences, a tool loop with its ids.
BODY: dict[str, Any] = {
    "model": "anthropic",
    "max_tokens": 256,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"c": 1}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"},
                {"type": "text", "text": "thanks", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ],
    "tools": [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"c": {"type": "integer"}}},
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "metadata": {"user_id": "u-1"},
    "top_k": 5,
    "stop_sequences": ["END"],
}
DIRECT = {"x-api-key": "sk-ant-fake", "anthropic-version": "2023-06-01"}
MESSAGE_ID = re.compile(rb"msg_[0-9]+")


def without_ids(raw: bytes) -> bytes:
    return MESSAGE_ID.sub(b"msg_ID", raw)


def relayed_events(raw: bytes) -> bytes:
    """The gateway's stream as the provider framed it: without the `id:` lines the gateway
    adds for resumes and its trailing `[DONE]`, which Anthropic clients skip."""
    events = [
        b"\n".join(line for line in event.split(b"\n") if not line.startswith(b"id: "))
        for event in raw.split(b"\n\n")
    ]
    return b"\n\n".join(e for e in events if e and e != b"data: [DONE]") + b"\n\n"


async def post(session: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, bytes]:
    async with session.post(url + "/v1/messages", json=body, **kw) as reply:
        return reply.status, await reply.read()


async def test_whole_message_passes_through_byte_for_byte(fake, namespace):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            status, relayed = await post(session, url, BODY)
            assert status == 200, relayed
            (received,) = fake.state.requests
            assert received.json == {**BODY, "model": "claude-sonnet-4-5"}
            direct_body = {**BODY, "model": "claude-sonnet-4-5"}
            status, direct = await post(session, fake.base_url, direct_body, headers=DIRECT)
            assert status == 200
        assert without_ids(relayed) == without_ids(direct)


async def test_stream_events_pass_through_byte_for_byte(fake, namespace):
    body = {**BODY, "stream": True}
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            status, relayed = await post(session, url, body)
            assert status == 200, relayed
            (received,) = fake.state.requests
            assert received.json == {**body, "model": "claude-sonnet-4-5"}
            direct_body = {**body, "model": "claude-sonnet-4-5"}
            status, direct = await post(session, fake.base_url, direct_body, headers=DIRECT)
    assert b'data: {"type": "ping"}' in relayed  # the provider's own spelling
    assert without_ids(relayed_events(relayed)) == without_ids(direct)


async def test_anthropic_beta_reaches_anthropic_and_is_refused_elsewhere(fake, namespace):
    beta = {"anthropic-beta": "interleaved-thinking-2025-05-14"}
    hello = {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            status, _ = await post(session, url, {**hello, "model": "anthropic"}, headers=beta)
            assert status == 200
            (received,) = fake.state.requests
            assert received.headers["anthropic-beta"] == beta["anthropic-beta"]
            status, refused = await post(session, url, {**hello, "model": "openai"}, headers=beta)
            assert status == 400
            error = orjson.loads(refused)
            assert error["type"] == "error"
            assert "anthropic-beta" in error["error"]["message"]
            dropped = {**hello, "model": "openai", "drop_params": True}
            status, _ = await post(session, url, dropped, headers=beta)
            assert status == 200


async def test_a_group_that_drops_params_takes_claude_codes_betas_and_extras(fake, namespace):
    """Claude Code sends anthropic-beta and newer fields on every request and cannot add
    drop_params to its bodies: a group whose deployments drop params takes them."""
    openai = next(t for t in TARGETS if t.provider == "openai")
    groups = [Group("lenient", openai, "", {"drop_params": "true"})]
    config = load_config_text(config_text(fake.base_url, namespace, groups), AWS_CONFIG_ENV)
    body = {
        "model": "lenient",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "context_management": {"edits": []},
    }
    headers = {"anthropic-beta": "context-management-2025-06-27"}
    async with asyncio.timeout(TIMEOUT_S), service(config) as ([door], _):
        async with aiohttp.ClientSession() as session:
            status, reply = await post(session, door.url, body, headers=headers)
    assert status == 200, reply
    assert orjson.loads(reply)["content"][0]["type"] == "text"


async def test_a_beta_is_refused_when_a_fallback_would_drop_it(fake, namespace):
    """A translated fallback cannot carry anthropic-beta, so a group that may fall back to
    one refuses the header by name up front unless drop_params: the beta is never lost
    silently when the Anthropic deployment fails over."""
    anthropic = next(t for t in TARGETS if t.provider == "anthropic")
    openai = next(t for t in TARGETS if t.provider == "openai")
    groups = [
        Group("claude-down", anthropic, "~status=500"),
        Group("claude", anthropic, ""),
        Group("gpt", openai, ""),
        Group("gpt-lenient", openai, "", {"drop_params": "true"}),
    ]
    fallbacks = [{"claude-down": ["gpt"]}, {"claude": ["gpt-lenient"]}]
    text = config_text(fake.base_url, namespace, groups).replace(
        "router_settings:\n", f"router_settings:\n  fallbacks: {orjson.dumps(fallbacks).decode()}\n"
    )
    config = load_config_text(text, AWS_CONFIG_ENV)
    beta = {"anthropic-beta": "interleaved-thinking-2025-05-14"}
    hello = {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    async with asyncio.timeout(TIMEOUT_S), service(config) as ([door], _):
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            status, refused = await post(
                session, door.url, {**hello, "model": "claude-down"}, headers=beta
            )
            assert status == 400, refused
            error = orjson.loads(refused)
            assert error["type"] == "error"
            assert error["error"]["type"] == "invalid_request_error"
            assert "anthropic-beta" in error["error"]["message"]
            assert "gpt" in error["error"]["message"]
            assert not fake.state.requests  # refused before any deployment saw it
            # With drop_params the fallback serves it, without the beta.
            dropped = {**hello, "model": "claude-down", "drop_params": True}
            status, reply = await post(session, door.url, dropped, headers=beta)
            assert status == 200, reply
            served = fake.state.requests[-1]
            assert served.path == "/v1/chat/completions"
            assert "anthropic-beta" not in served.headers
            # A fallback that drops params lets the Anthropic deployment keep the beta.
            fake.state.clear()
            status, reply = await post(
                session, door.url, {**hello, "model": "claude"}, headers=beta
            )
            assert status == 200, reply
            (received,) = fake.state.requests
            assert received.headers["anthropic-beta"] == beta["anthropic-beta"]
