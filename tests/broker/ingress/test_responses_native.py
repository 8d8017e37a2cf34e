"""/v1/responses to an OpenAI deployment is native, proven byte for byte: what the fake's
`/v1/responses` received equals what the client sent (the model aside, the gateway's own
fields stripped), and what the client received equals what the fake sends for that body
(its ids aside, which count up per request), events and all. Usage and cost come from the
Responses usage, through the same queue and accounting as chat; the official SDK parses
the relayed reply."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.broker.ingress.setup import TIMEOUT_S, gateway
from tests.broker.providers_setup import no_ambient_aws  # noqa: F401 (autouse fixture)
from tests.scrape import Scrape, scrape_url

BODY: dict[str, Any] = {
    "model": "openai-native",
    "instructions": "Be brief.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "Capital of France?"}]}],
    "tools": [{"type": "web_search"}],
    "include": ["reasoning.encrypted_content"],
    "store": False,
    "metadata": {"trace": "t-1"},
    "prompt_cache_key": "k-1",
}
# Gateway fields a client may add; the provider never sees them.
GATEWAY = {"num_retries": 0, "timeout": 30}
DIRECT = {"Authorization": "Bearer sk-fake"}
IDS = re.compile(rb"(resp|msg)_[0-9a-f]{48}")
CREATED = re.compile(rb'"created_at":[0-9]+')


def without_ids(raw: bytes) -> bytes:
    return CREATED.sub(b'"created_at":0', IDS.sub(rb"\1_ID", raw))


def relayed_events(raw: bytes) -> bytes:
    """The gateway's stream as the provider framed it: without the `id:` lines the gateway
    adds for resumes and its trailing `[DONE]`, which the SDK skips."""
    events = [
        b"\n".join(line for line in event.split(b"\n") if not line.startswith(b"id: "))
        for event in raw.split(b"\n\n")
    ]
    return b"\n\n".join(e for e in events if e and e != b"data: [DONE]") + b"\n\n"


async def post(session: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, bytes]:
    async with session.post(url, json=body, **kw) as reply:
        return reply.status, await reply.read()


async def relay_and_direct(fake: Any, namespace: str, body: dict[str, Any]) -> tuple[bytes, bytes]:
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            status, relayed = await post(session, url + "/v1/responses", {**body, **GATEWAY})
            assert status == 200, relayed
            (received,) = fake.state.requests
            assert received.path == "/v1/responses"
            direct_body = {**body, "model": "gpt-4o-mini"}
            assert received.json == direct_body
            status, direct = await post(
                session, fake.base_url + "/v1/responses", direct_body, headers=DIRECT
            )
            assert status == 200
    return relayed, direct


async def test_whole_response_passes_through_byte_for_byte(fake, namespace):
    relayed, direct = await relay_and_direct(fake, namespace, BODY)
    assert without_ids(relayed) == without_ids(direct)
    assert orjson.loads(relayed)["tools"] == [{"type": "web_search"}]  # not refused


async def test_stream_events_pass_through_byte_for_byte(fake, namespace):
    relayed, direct = await relay_and_direct(fake, namespace, {**BODY, "stream": True})
    assert b"event: response.completed\ndata: " in relayed
    assert without_ids(relayed_events(relayed)) == without_ids(direct)


async def test_the_sdk_parses_the_relayed_reply_and_usage_is_metered(fake, namespace):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as sdk:
            whole = await sdk.responses.with_raw_response.create(model="openai-native", input="hi")
            reply = whole.parse()
            assert reply.output_text == "This is a fake reply from gpt-4o-mini."
            assert reply.id.startswith("resp_")
            usage = reply.usage
            assert usage is not None
            # The gateway's accounting read the same usage the client got.
            assert whole.headers["x-switchboard-deployment"]
            stream = await sdk.responses.create(model="openai-native", input="hi", stream=True)
            events = [event async for event in stream]
            assert events[-1].type == "response.completed"


async def test_the_sdk_streams_a_native_function_call(fake, namespace):
    """`responses.stream` with a function tool (Codex's and the Agents SDK's loop): the
    provider's function_call events reach the SDK as it sent them, and the call's output
    goes back to the deployment holding the response through `previous_response_id`."""
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as sdk:
            fake.state.clear()
            async with sdk.responses.stream(
                model="openai-native-tools", input="Weather in Paris?", tools=[tool]
            ) as stream:
                events = [event async for event in stream]
                final = await stream.get_final_response()
            (received,) = fake.state.requests
            assert received.path == "/v1/responses"  # native, not chat completions
            assert received.json["tools"] == [tool]
            deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
            (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
            (call,) = final.output
            assert call.type == "function_call" and call.name == "get_weather"
            assert "".join(deltas) == done.arguments == call.arguments
            assert orjson.loads(call.arguments)["query"] == "Weather in Paris?"
            output: Any = [
                {"type": "function_call_output", "call_id": call.call_id, "output": "sun"}
            ]
            follow_up = await sdk.responses.create(
                model="openai-native-tools", input=output, previous_response_id=final.id
            )
            assert follow_up.status == "completed"
            sent = fake.state.requests[-1]
            assert sent.json["previous_response_id"] == final.id and sent.json["input"] == output


def metered(scrape: Scrape) -> tuple[float, float, float]:
    """The openai-native group's prompt and completion tokens and cost, as /metrics counts."""
    values = scrape.values.items()
    in_group = [
        (name, labels, v)
        for (name, labels), v in values
        if ("model_group", "openai-native") in labels
    ]

    def tokens(kind: str) -> float:
        return sum(
            v
            for name, labels, v in in_group
            if name == "switchboard_tokens_total" and ("kind", kind) in labels
        )

    cost = sum(v for name, _, v in in_group if name == "switchboard_cost_usd_total")
    return tokens("prompt"), tokens("completion"), cost


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_usage_and_cost_are_the_responses_usage(fake, namespace, stream: bool):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            body = {"model": "openai-native", "input": "Say hello", "stream": stream}
            status, raw = await post(session, url + "/v1/responses", body)
            assert status == 200, raw
            counted = metered(await scrape_url(session, url + "/metrics"))
    if stream:
        completed = raw.split(b"event: response.completed\ndata: ")[1].split(b"\n")[0]
        usage = orjson.loads(completed)["response"]["usage"]
    else:
        usage = orjson.loads(raw)["usage"]
    assert counted[:2] == (usage["input_tokens"], usage["output_tokens"])
    assert counted[2] > 0
