"""/v1/messages to Claude on Vertex AI is a native pass-through through rawPredict /
streamRawPredict, proven byte for byte as the Anthropic and Bedrock ones are: what the fake
received is what the client sent (without `model`, with `anthropic_version`), and what the
client received is what the fake sends for that body. The deployment's Google access token
is minted from a service-account key by google-auth at the fake's token endpoint, once, and
refreshed when due. Then the official `anthropic` client through the service (whole,
streamed, tool use, a Claude-Code-like tool loop), chat completions and /v1/responses
translated as for `anthropic/`, errors in Anthropic's shape, `anthropic-beta` as a header,
count_tokens at Vertex's counter, the counting path, and what the config loader refuses."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from broker.config.loader import load_config_text
from broker.config.problems import InvalidConfig
from tests.broker.harness import service
from tests.broker.ingress.setup import TIMEOUT_S
from tests.broker.ingress.test_messages_native import BODY, post, relayed_events, without_ids
from tests.claude_sdk import HELLO, counted_for_one, error_bodies, tool_loop
from workers.providers.vertex.auth import token_for
from workers.testing.google_oauth import authority, service_account
from workers.testing.server import FakeUpstream

GROUP = "vertex-claude"
MODEL_ID = "claude-sonnet-4-5@20250929"
PROJECT = "switchboard-test"
LOCATION = "us-east5"
MODELS = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/anthropic/models"
VERSION = {"anthropic_version": "vertex-2023-10-16"}
SCENARIOS = {
    "": "",
    "-tools": "~tools=2",
    "-429": "~status=429",
    "-broken": "~stream_error_after=2~chunk_delay=0.1",
}


def config_text(fake: FakeUpstream, namespace: str, credentials: Path) -> str:
    lines = ["model_list:"]
    for suffix, directives in SCENARIOS.items():
        lines += [
            f"  - model_name: {GROUP}{suffix}",
            "    litellm_params:",
            f"      model: vertex_ai/{MODEL_ID}{directives}",
            f"      api_base: {fake.base_url}/v1",
            f"      vertex_project: {PROJECT}",
            f"      vertex_location: {LOCATION}",
            f"      vertex_credentials: {credentials}",
            "    model_info:",
            f"      base_model: {MODEL_ID}",
        ]
    lines += ["router_settings:", "  num_retries: 0", "switchboard_settings:"]
    lines += [f"  namespace: {namespace}"]
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def gateway(fake: FakeUpstream, namespace: str, tmp_path: Path) -> AsyncIterator[str]:
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(service_account(fake.base_url + "/token", project=PROJECT)))
    token_for.cache_clear()  # a fresh key per test: no token cached from another one
    config = load_config_text(config_text(fake, namespace, path), {})
    async with asyncio.timeout(TIMEOUT_S), service(config) as ([door], _):
        yield door.url


def as_predicted(body: dict[str, Any]) -> dict[str, Any]:
    """A client's Messages body as rawPredict takes it."""
    return {**{k: v for k, v in body.items() if k != "model"}, **VERSION}


def predicted(fake: FakeUpstream) -> list[Any]:
    return [r for r in fake.state.requests if r.path.startswith(MODELS)]


async def direct(session: aiohttp.ClientSession, fake: FakeUpstream, body: Any) -> bytes:
    """What the fake sends for `body` asked of it directly, with a token it issued."""
    granted = authority(fake.state)
    token = next(iter(granted.issued))
    method = "streamRawPredict" if body.get("stream") else "rawPredict"
    url = f"{fake.base_url}{MODELS}/{MODEL_ID}:{method}"
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(url, json=body, headers=headers) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.read()


async def test_whole_message_passes_through_byte_for_byte(fake, namespace, tmp_path):
    async with gateway(fake, namespace, tmp_path) as url, aiohttp.ClientSession() as session:
        fake.state.clear()
        status, relayed = await post(session, url, {**BODY, "model": GROUP})
        assert status == 200, relayed
        (received,) = predicted(fake)
        assert received.path == f"{MODELS}/{MODEL_ID}:rawPredict"
        assert received.json == as_predicted(BODY)
        assert received.headers["Authorization"].startswith("Bearer ya29.fake-")
        sent = await direct(session, fake, as_predicted(BODY))
    assert without_ids(relayed) == without_ids(sent)


async def test_stream_events_pass_through_byte_for_byte(fake, namespace, tmp_path):
    async with gateway(fake, namespace, tmp_path) as url, aiohttp.ClientSession() as session:
        fake.state.clear()
        status, relayed = await post(session, url, {**BODY, "model": GROUP, "stream": True})
        assert status == 200, relayed
        (received,) = predicted(fake)
        assert received.path == f"{MODELS}/{MODEL_ID}:streamRawPredict"
        assert received.json == as_predicted({**BODY, "stream": True})
        sent = await direct(session, fake, as_predicted({**BODY, "stream": True}))
    assert without_ids(relayed_events(relayed)) == without_ids(sent)


async def test_one_token_serves_until_it_is_due(fake, namespace, tmp_path):
    hello = {"model": GROUP, "max_tokens": 32, "messages": HELLO}
    async with gateway(fake, namespace, tmp_path) as url, aiohttp.ClientSession() as session:
        for _ in range(3):
            status, reply = await post(session, url, hello)
            assert status == 200, reply
    assert authority(fake.state).grants == 1
    assert len({r.headers["Authorization"] for r in predicted(fake)}) == 1


async def test_a_token_about_to_expire_is_refreshed(fake, namespace, tmp_path):
    """A token within google-auth's refresh margin (3 min 45 s) is renewed before use."""
    authority(fake.state).expires_in_s = 60
    hello = {"model": GROUP, "max_tokens": 32, "messages": HELLO}
    async with gateway(fake, namespace, tmp_path) as url, aiohttp.ClientSession() as session:
        for _ in range(2):
            status, reply = await post(session, url, hello)
            assert status == 200, reply
    assert authority(fake.state).grants == 2
    assert len({r.headers["Authorization"] for r in predicted(fake)}) == 2


async def test_anthropic_beta_is_a_header(fake, namespace, tmp_path):
    betas = "interleaved-thinking-2025-05-14"
    hello = {"model": GROUP, "max_tokens": 64, "messages": HELLO}
    async with gateway(fake, namespace, tmp_path) as url, aiohttp.ClientSession() as session:
        fake.state.clear()
        status, reply = await post(session, url, hello, headers={"anthropic-beta": betas})
        assert status == 200, reply
    (received,) = predicted(fake)
    assert received.headers["anthropic-beta"] == betas
    assert "anthropic_beta" not in received.json


@contextlib.asynccontextmanager
async def client(fake: Any, namespace: str, tmp_path: Path) -> AsyncIterator[Any]:
    async with gateway(fake, namespace, tmp_path) as url:
        async with AsyncAnthropic(
            base_url=url, api_key="sk-switchboard", max_retries=0, timeout=TIMEOUT_S
        ) as sdk:
            yield sdk


async def test_the_anthropic_sdk_whole_streamed_and_a_tool_loop(fake, namespace, tmp_path):
    reply_text = f"This is a fake reply from {MODEL_ID}."
    async with client(fake, namespace, tmp_path) as sdk:
        message = await sdk.messages.create(model=GROUP, max_tokens=256, messages=HELLO)
        assert message.content[0].text == reply_text and message.stop_reason == "end_turn"
        async with sdk.messages.stream(model=GROUP, max_tokens=256, messages=HELLO) as stream:
            texts = [text async for text in stream.text_stream]
        assert "".join(texts) == reply_text
        # Claude Code's loop: assistant tool_use -> user tool_result -> final text, streamed.
        answer, results = await tool_loop(sdk, tools_model=GROUP + "-tools", model=GROUP)
    assert answer.stop_reason == "end_turn" and answer.content[-1].type == "text"
    assert predicted(fake)[-1].json["messages"][-1]["content"] == results


async def test_chat_completions_are_translated_as_for_anthropic(fake, namespace, tmp_path):
    async with gateway(fake, namespace, tmp_path) as url:
        async with AsyncOpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0) as openai:
            fake.state.clear()
            whole = await openai.chat.completions.create(
                model=GROUP, messages=HELLO, max_tokens=64, extra_body={"top_k": 5}
            )
            chunks = [
                chunk
                async for chunk in await openai.chat.completions.create(
                    model=GROUP + "-tools",
                    messages=HELLO,
                    stream=True,
                    tools=[
                        {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
                    ],
                )
            ]
    assert whole.choices[0].message.content == f"This is a fake reply from {MODEL_ID}."
    assert whole.usage is not None and whole.usage.completion_tokens > 0
    calls = [
        c for chunk in chunks for choice in chunk.choices for c in choice.delta.tool_calls or []
    ]
    assert {c.function.name for c in calls if c.function and c.function.name} == {"get_weather"}
    plain, tools = predicted(fake)
    assert plain.path.endswith(":rawPredict") and tools.path.endswith(":streamRawPredict")
    assert "model" not in plain.json and plain.json["anthropic_version"] == "vertex-2023-10-16"
    assert plain.json["top_k"] == 5 and tools.json["stream"] is True


async def test_responses_are_translated_to_vertex_claude(fake, namespace, tmp_path):
    """/v1/responses to Claude on Vertex goes through the translation, as for `anthropic/`:
    whole, streamed with a function call, and a follow-up whose history the gateway keeps."""
    tool: Any = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    async with gateway(fake, namespace, tmp_path) as url:
        async with AsyncOpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0) as openai:
            fake.state.clear()
            first = await openai.responses.create(
                model=GROUP, input="Say hello", instructions="Be brief."
            )
            async with openai.responses.stream(
                model=GROUP + "-tools", input="Weather in Paris?", tools=[tool]
            ) as stream:
                kinds = [event.type async for event in stream]
                streamed = await stream.get_final_response()
            follow_up = await openai.responses.create(
                model=GROUP, input="And again", previous_response_id=first.id
            )
    assert first.output_text == f"This is a fake reply from {MODEL_ID}."
    assert first.usage is not None and first.usage.output_tokens > 0
    assert "response.function_call_arguments.delta" in kinds
    calls = [item for item in streamed.output if item.type == "function_call"]
    assert calls and {c.name for c in calls} == {"get_weather"}
    assert follow_up.output_text == first.output_text
    plain, tools, again = predicted(fake)
    assert plain.path.endswith(":rawPredict") and tools.path.endswith(":streamRawPredict")
    assert "model" not in plain.json and plain.json["anthropic_version"] == "vertex-2023-10-16"
    assert plain.json["system"] == "Be brief." or plain.json["system"][0]["text"] == "Be brief."
    assert tools.json["tools"][0]["name"] == "get_weather"
    # The follow-up carries the first turn, rebuilt from the gateway's store.
    assert [m["role"] for m in again.json["messages"]] == ["user", "assistant", "user"]


async def test_errors_come_in_anthropics_shape(fake, namespace, tmp_path):
    async with client(fake, namespace, tmp_path) as sdk:
        error, broken = await error_bodies(sdk, GROUP)
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
        assert broken["type"] == "error"


async def test_a_key_google_refuses_is_the_gateways_failure(fake, namespace, tmp_path):
    async with gateway(fake, namespace, tmp_path) as url, aiohttp.ClientSession() as session:
        # Another key for the same account: Google cannot verify its signature.
        info = json.loads((tmp_path / "service-account.json").read_text())
        other = service_account(fake.base_url + "/token", project=PROJECT)
        info["private_key"] = other["private_key"]
        (tmp_path / "service-account.json").write_text(json.dumps(info))
        token_for.cache_clear()
        hello = {"model": GROUP, "max_tokens": 9, "messages": HELLO}
        status, reply = await post(session, url, hello)
        async with session.post(url + "/v1/messages/count_tokens", json=hello) as counted:
            count_status, count_reply = counted.status, await counted.read()
    # The gateway's own credentials failing is the gateway's failure (workers/upstream_text.py):
    # a 502 naming the deployment; Google's words go to the log only.
    answer = orjson.loads(reply)
    assert status == 502 and answer["error"]["type"] == "api_error"
    assert "vertex-claude" in answer["error"]["message"]
    assert "rejected the gateway's credentials" in answer["error"]["message"]
    assert "PRIVATE KEY" not in reply.decode() and "JWT" not in reply.decode()
    # count_tokens mints its token the same way, and says so in Anthropic's shape.
    counted_error = orjson.loads(count_reply)
    assert count_status == 502 and counted_error["type"] == "error"
    assert counted_error["error"]["type"] == "api_error" and b"JWT" not in count_reply


async def test_count_tokens_asks_vertex(fake, namespace, tmp_path):
    body = {"model": GROUP, "max_tokens": 64, "messages": HELLO, "system": "Be brief."}
    async with gateway(fake, namespace, tmp_path) as url, aiohttp.ClientSession() as session:
        fake.state.clear()
        async with session.post(url + "/v1/messages/count_tokens", json=body) as reply:
            assert reply.status == 200, await reply.text()
            assert reply.headers["x-switchboard-token-count"] == "provider"
            counted = await reply.json()
    (received,) = predicted(fake)
    assert received.path == f"{MODELS}/count-tokens:rawPredict"
    assert received.json == {**body, "model": MODEL_ID, **VERSION}
    assert counted["input_tokens"] > 0


async def test_usage_and_cost_are_counted_from_vertexs_reply(fake, namespace, tmp_path):
    async with client(fake, namespace, tmp_path) as sdk:
        usage, (prompt, completion, cost) = await counted_for_one(sdk, GROUP, stream=True)
    assert prompt == usage.input_tokens and completion == usage.output_tokens
    assert cost > 0  # priced as Anthropic's claude-sonnet-4-5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"vertex_location": "us-east5"}, "vertex_project"),
        ({"vertex_project": PROJECT}, "vertex_location"),
        ({"vertex_project": PROJECT, "vertex_location": "evil.com/x"}, "vertex_location"),
    ],
)
def test_the_config_loader_names_what_is_missing(params: dict[str, str], field: str):
    lines = ["model_list:", "  - model_name: v", "    litellm_params:"]
    lines += [f"      model: vertex_ai/{MODEL_ID}"]
    lines += [f"      {k}: {v}" for k, v in params.items()]
    with pytest.raises(InvalidConfig) as refused:
        load_config_text("\n".join(lines) + "\n", {})
    assert field in str(refused.value)


def test_gemini_on_vertex_is_refused_by_name():
    text = "model_list:\n  - model_name: v\n    litellm_params:\n"
    text += "      model: vertex_ai/gemini-2.5-pro\n"
    text += "      vertex_project: switchboard-test\n      vertex_location: us-central1\n"
    with pytest.raises(InvalidConfig) as refused:
        load_config_text(text, {})
    assert "gemini/" in str(refused.value)


async def test_the_vertex_pass_through_reaches_claude_with_the_deployments_token(
    fake, namespace, tmp_path
):
    """LiteLLM's `/vertex_ai/...` to a Claude method goes to the Vertex deployment, its own
    project and location in place of the client's, with its Google token (never the
    client's credentials)."""
    body = {**VERSION, "max_tokens": 32, "messages": HELLO}
    path = "/vertex_ai/v1/projects/other/locations/europe-west1/publishers/anthropic/models/"
    async with gateway(fake, namespace, tmp_path) as url, aiohttp.ClientSession() as session:
        fake.state.clear()
        target = url + path + MODEL_ID + ":rawPredict"
        headers = {"Authorization": "Bearer sk-client"}
        async with session.post(target, json=body, headers=headers) as reply:
            assert reply.status == 200, await reply.text()
            assert reply.headers["x-switchboard-passthrough"] == "1"
            message = await reply.json()
    assert message["content"][0]["text"] == f"This is a fake reply from {MODEL_ID}."
    (received,) = predicted(fake)
    assert received.path == f"{MODELS}/{MODEL_ID}:rawPredict"
    assert received.headers["Authorization"].startswith("Bearer ya29.fake-")
