"""Provider pass-through (`/openai/...`, `/anthropic/...`, `/gemini/...`, `/azure/...`,
`/bedrock/...`, `/vertex_ai/...`): the official clients work through it, the provider gets
the configured credentials and never the client's, answers (streams included) come back
unchanged, and no path reaches past the configured base."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from yarl import URL

from tests.broker.ingress.setup import TIMEOUT_S, gateway
from tests.broker.providers_setup import no_ambient_aws  # noqa: F401 (autouse fixture)
from tests.scrape import Scrape, scrape_url

HELLO = [{"role": "user", "content": "Say hello"}]
CLIENT_KEY = "sk-client-secret-0123456789"


async def test_openai_and_anthropic_clients_work_through_the_pass_through(fake, namespace):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        openai_sdk: Any = AsyncOpenAI(base_url=url + "/openai/v1", api_key=CLIENT_KEY)
        async with openai_sdk:
            fake.state.clear()
            completion = await openai_sdk.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO
            )
            assert completion.choices[0].message.content == (
                "This is a fake reply from gpt-4o-mini."
            )
            (sent,) = fake.state.requests
            assert sent.headers["Authorization"] == "Bearer sk-fake"
            stream = await openai_sdk.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "This is a fake reply from gpt-4o-mini."
        anthropic_sdk: Any = AsyncAnthropic(base_url=url + "/anthropic", api_key=CLIENT_KEY)
        async with anthropic_sdk:
            fake.state.clear()
            message = await anthropic_sdk.messages.create(
                model="claude-sonnet-4-5", max_tokens=64, messages=HELLO
            )
            assert message.content[0].text == "This is a fake reply from claude-sonnet-4-5."
            (sent,) = fake.state.requests
            assert sent.headers["x-api-key"] == "sk-ant-fake"
            assert CLIENT_KEY not in str(dict(sent.headers))
        # Counted in the front door's metrics under `<provider> pass-through`.
        async with aiohttp.ClientSession() as session:
            scrape = await scrape_url(session, url + "/metrics")
        assert answered(scrape, "openai pass-through") == 2  # whole and streamed
        assert answered(scrape, "anthropic pass-through") == 1


def answered(scrape: Scrape, group: str) -> float:
    return sum(
        value
        for (name, labels), value in scrape.values.items()
        if name == "switchboard_requests_total"
        and ("model_group", group) in labels
        and ("status", "200") in labels
    )


async def test_gemini_and_bedrock_are_signed_with_the_configured_credentials(fake, namespace):
    body = {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}
    converse = {"messages": [{"role": "user", "content": [{"text": "Say hello"}]}]}
    model = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            gemini = url + "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
            async with session.post(gemini, json=body, headers={"x-goog-api-key": CLIENT_KEY}) as r:
                assert r.status == 200, await r.text()
                assert "fake reply" in await r.text()
            (sent,) = fake.state.requests
            assert sent.headers["x-goog-api-key"] == "gemini-fake"
            bedrock = URL(
                url + f"/bedrock/model/{model.replace(':', '%3A')}/converse", encoded=True
            )
            async with session.post(bedrock, json=converse) as r:
                assert r.status == 200, await r.text()
                assert "fake reply" in await r.text()


async def test_no_path_reaches_past_the_configured_base(fake, namespace):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            for path in ("/openai/%2e%2e/%2e%2e/admin", "/openai//evil.example/x", "/openai/a%5Cb"):
                async with session.get(URL(url + path, encoded=True)) as reply:
                    assert reply.status == 400, path
                    assert (await reply.json())["error"]["code"] == "invalid_path"
            # No Claude-on-Vertex deployment here (every other provider has one).
            claude = "/vertex_ai/v1/projects/p/locations/l/publishers/anthropic/models/c:rawPredict"
            async with session.post(url + claude, json={}) as reply:
                assert reply.status == 404
                assert (await reply.json())["error"]["code"] == "provider_not_configured"
            assert fake.state.request_count == 0


async def test_vertex_ai_paths_that_map_reach_the_gemini_deployment(fake, namespace):
    """LiteLLM's `/vertex_ai/...`: a Google publisher model's method goes to the Gemini
    deployment as the Gemini API path (the bodies are the same), with its key; a path
    without a Gemini counterpart is a 404 naming what is served."""
    body = {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}
    vertex = "/vertex_ai/v1beta1/projects/p-1/locations/us-central1/publishers/google/models/"
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            target = url + vertex + "gemini-2.5-flash:generateContent"
            async with session.post(target, json=body, headers={"Authorization": "Bearer x"}) as r:
                assert r.status == 200, await r.text()
                assert "fake reply" in await r.text()
            (sent,) = fake.state.requests
            assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
            assert sent.headers["x-goog-api-key"] == "gemini-fake"
            assert "Authorization" not in sent.headers
            unmapped = url + "/vertex_ai/v1/projects/p-1/locations/l/endpoints/123:predict"
            async with session.post(unmapped, json=body) as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "vertex_path_not_mapped"


async def test_azure_gets_the_deployments_key_and_version_and_streams_back_unchanged(
    fake, namespace
):
    body = {"messages": HELLO, "stream": True}
    path = "/openai/deployments/my-gpt4o/chat/completions"
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            headers = {"api-key": CLIENT_KEY}
            async with session.post(url + "/azure" + path, json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                assert r.headers["x-switchboard-passthrough"] == "1"
                assert r.content_type == "text/event-stream"
                relayed = await r.read()
            (sent,) = fake.state.requests
            assert sent.path == path
            assert sent.headers["api-key"] == "azure-fake"
            assert sent.query["api-version"] == "2024-10-21"
            direct_url = fake.base_url + path + "?api-version=2024-10-21"
            async with session.post(direct_url, json=body, headers=sent_headers(sent)) as r:
                direct = await r.read()
            # A path that climbs out of the Azure base never leaves the gateway.
            fake.state.clear()
            escape = URL(url + "/azure/openai/%2e%2e/%2e%2e/admin", encoded=True)
            async with session.post(escape, json=body) as r:
                assert r.status == 400
                assert (await r.json())["error"]["code"] == "invalid_path"
            assert fake.state.request_count == 0
    assert b"data: [DONE]" in relayed
    assert without_ids(relayed) == without_ids(direct)


def sent_headers(sent: Any) -> dict[str, str]:
    return {"api-key": sent.headers["api-key"], "content-type": "application/json"}


def without_ids(raw: bytes) -> bytes:
    """A stream without what differs between two calls: chunk ids and creation times."""
    return re.sub(rb'"(id|created)":\s*("[^"]*"|\d+)', rb'"\1":0', raw)
