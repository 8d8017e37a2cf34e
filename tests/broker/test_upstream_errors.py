"""Upstream errors reach the client in the gateway's words (issue #13, item 7): a provider
refusing the gateway's credentials is a 502 naming the deployment (not a 401 blaming the
caller's valid key), an unreadable reply is a 502 that echoes nothing, a 4xx about the
request keeps the provider's message with key-shaped strings masked; the worker's log has
the details, masked."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from broker.config.loader import load_config_text
from tests.broker.harness import FAST_CLAIMS, read_sse, service
from tests.broker.providers_setup import TARGETS, api_base
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hi"}]
# The gateway's key for the deployments, which the fake refuses; the fake echoes a fragment
# of it ("sk-ups***666"), as OpenAI does.
WRONG_KEY = "sk-upstream-wrong-666"
FRAGMENTS = ("sk-ups", "***666", WRONG_KEY, "Incorrect API key")
_BY_PROVIDER = {target.provider: target for target in TARGETS}
PROVIDERS = ("openai", "anthropic", "gemini")

# What the misbehaving upstream below sends; none of it may reach a client.
INTERNAL = "db-7.internal.example:5432"
LEAKED_KEY = "sk-live-0123456789abcdefghij"


def config_for(namespace: str, models: list[dict[str, Any]]) -> Any:
    document = {
        "model_list": models,
        "router_settings": {"num_retries": 0},
        "switchboard_settings": {"namespace": namespace, **FAST_CLAIMS},
    }
    return load_config_text(yaml.safe_dump(document))


async def ask(url: str, model: str, *, stream: bool = False) -> tuple[int, str]:
    """The status and the raw text the client received (the error body or event)."""
    body = {"model": model, "messages": HELLO, "stream": stream}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=body) as response,
    ):
        if response.content_type == "text/event-stream":
            return response.status, json.dumps(await read_sse(response))
        return response.status, await response.text()


@pytest.fixture
async def refusing_fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_key="sk-the-right-key-123") as upstream:
        yield upstream


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_auth_failure_is_a_502_naming_the_deployment_not_the_key(
    refusing_fake: FakeUpstream, namespace: str, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    models = [
        {
            "model_name": provider,
            "litellm_params": {
                "model": _BY_PROVIDER[provider].model,
                "api_base": api_base(_BY_PROVIDER[provider], refusing_fake.base_url),
                "api_key": WRONG_KEY,
            },
            "model_info": {"id": f"{provider}-main"},
        }
        for provider in PROVIDERS
    ]
    caplog.set_level(logging.WARNING, logger="switchboard.upstream")
    async with service(config_for(namespace, models)) as ([door], _):
        for provider in PROVIDERS:
            status, text = await ask(door.url, provider, stream=stream)
            assert status == 502, text
            error = json.loads(text)["error"]
            assert (error["type"], error["code"]) == ("api_error", "upstream_auth_failed")
            assert f"`{provider}-main` ({provider})" in error["message"]
            assert "credentials" in error["message"]
            for fragment in FRAGMENTS:
                assert fragment not in text, (provider, fragment)
    assert refusing_fake.request_count == len(PROVIDERS)
    # The worker logged what OpenAI said, with the key's fragment masked.
    logged = caplog.text
    assert "Incorrect API key provided: sk-***" in logged
    assert "ups***666" not in logged and WRONG_KEY not in logged


# ------------------------------------------------------------------ a misbehaving upstream


async def _misbehave(request: web.Request) -> web.StreamResponse:
    """Answers by model name: garbage, JSON of another shape, or errors quoting secrets."""
    model = (await request.json())["model"]
    if model == "garbage":
        page = f"<html>502 from {INTERNAL}, auth {LEAKED_KEY}</html>"
        return web.Response(text=page, content_type="text/html")
    if model == "wrong-shape":
        return web.json_response({"echo": LEAKED_KEY, "host": INTERNAL})
    if model == "garbage-stream":
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data: <pre>{INTERNAL} {LEAKED_KEY}</pre>\n\n".encode())
        return response
    if model == "bad-param":
        message = f"max_tokens is too large: 99999999. Your key {LEAKED_KEY} is fine."
        error = {"message": message, "type": "invalid_request_error", "param": "max_tokens"}
        return web.json_response({"error": error}, status=400)
    if model == "html-400":
        return web.Response(text=f"<h1>{INTERNAL}</h1>", status=400, content_type="text/html")
    error = {"message": f"upstream {INTERNAL} crashed", "type": "server_error"}
    return web.json_response({"error": error}, status=500)


@pytest.fixture
async def misbehaving() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _misbehave)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    await runner.cleanup()


MISBEHAVIOURS = {
    # model: (stream, status, code, words the message must have)
    "garbage": (False, 502, "provider_error", "sent a reply the gateway could not use"),
    "wrong-shape": (False, 502, "provider_error", "sent a reply the gateway could not use"),
    "garbage-stream": (True, 502, "provider_error", "sent a reply the gateway could not use"),
    "html-400": (False, 400, None, "openai answered HTTP 400"),
    "crash": (False, 500, "provider_error", "failed with HTTP 500"),
}


@pytest.mark.parametrize("model", list(MISBEHAVIOURS))
async def test_an_upstream_body_never_reaches_the_client(
    misbehaving: str, namespace: str, caplog: pytest.LogCaptureFixture, model: str
) -> None:
    stream, status, code, words = MISBEHAVIOURS[model]
    models = [
        {
            "model_name": model,
            "litellm_params": {"model": f"openai/{model}", "api_base": misbehaving, "api_key": "k"},
        }
    ]
    caplog.set_level(logging.WARNING, logger="switchboard.upstream")
    async with service(config_for(namespace, models)) as ([door], _):
        got, text = await ask(door.url, model, stream=stream)
    assert got == status, text
    error = json.loads(text)["error"]
    assert error["code"] == code and words in error["message"], error
    assert INTERNAL not in text and "sk-live" not in text and "<" not in text
    # The log has it, masked.
    assert INTERNAL in caplog.text and LEAKED_KEY not in caplog.text


async def test_an_upstream_message_about_the_request_passes_with_keys_masked(
    misbehaving: str, namespace: str
) -> None:
    models = [
        {
            "model_name": "bad-param",
            "litellm_params": {
                "model": "openai/bad-param",
                "api_base": misbehaving,
                "api_key": "k",
            },
        }
    ]
    async with service(config_for(namespace, models)) as ([door], _):
        status, text = await ask(door.url, "bad-param")
    assert status == 400, text
    error = json.loads(text)["error"]
    assert error["param"] == "max_tokens"
    assert error["message"] == "max_tokens is too large: 99999999. Your key sk-live-*** is fine."
