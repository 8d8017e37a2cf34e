"""Issue #13, item 1, through the service: an image_url on a Gemini deployment cannot reach
inside the network, the answer is a clear 400, and a fallback does not fetch again."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from broker.config import ConfigError, load_config_text
from tests.broker.harness import post, service
from tests.workers.media_servers import ALLOWED_NETWORK, canary, media_server
from workers.testing.server import FakeUpstream

PARAM = "messages[0].content[1].image_url"
TIMEOUT_S = 30.0


def config_text(fake_url: str, namespace: str) -> str:
    gemini = f"{{api_base: {fake_url}, api_key: gemini-key, model: gemini/gemini-2.5-flash"
    return f"""\
model_list:
  - model_name: gemini
    litellm_params: {gemini}}}
  - model_name: gemini-down
    litellm_params: {gemini}~status=500}}
router_settings:
  num_retries: 0
  fallbacks: [{{gemini-down: [gemini]}}]
switchboard_settings:
  namespace: {namespace}
  media_fetch: {{allow_networks: ["{ALLOWED_NETWORK}"]}}
"""


def asking(model: str, url: str) -> dict[str, Any]:
    question = {"type": "text", "text": "What is this?"}
    image = {"type": "image_url", "image_url": {"url": url}}
    return {"model": model, "messages": [{"role": "user", "content": [question, image]}]}


async def test_an_internal_image_url_is_a_clear_400_and_never_fetched(namespace: str) -> None:
    async with (
        FakeUpstream() as fake,
        canary() as trap,
        service(load_config_text(config_text(fake.base_url, namespace))) as ([door], _),
        aiohttp.ClientSession() as http,
        asyncio.timeout(TIMEOUT_S),
    ):
        for url in (
            f"http://127.0.0.1:{trap.port}/latest/meta-data/",
            f"http://localhost:{trap.port}/",
            f"http://[::ffff:127.0.0.1]:{trap.port}/",
            f"{door.url}/metrics",  # the front door's own metrics, once fetched as an "image"
        ):
            status, body, _ = await post(http, door.url, asking("gemini", url))
            assert status == 400, body
            assert body == {
                "error": {
                    "message": f"{PARAM} could not be fetched: address not allowed",
                    "type": "invalid_request_error",
                    "param": PARAM,
                    "code": "invalid_image_url",
                }
            }
    assert trap.untouched
    assert fake.request_count == 0


async def test_an_allowed_image_is_fetched_once_across_a_fallback(namespace: str) -> None:
    async with (
        FakeUpstream() as fake,
        media_server() as images,
        service(load_config_text(config_text(fake.base_url, namespace))) as ([door], _),
        aiohttp.ClientSession() as http,
        asyncio.timeout(TIMEOUT_S),
    ):
        body = asking("gemini-down", f"{images.base_url}/cat.png")
        status, answer, response = await post(http, door.url, body)
        assert status == 200, answer
        assert response.headers["x-switchboard-fallbacks"] == "1"
    assert fake.request_count == 2  # gemini-down's 500, then gemini's answer
    assert images.hits["/cat.png"] == 1


def test_media_fetch_settings_load_and_refuse_what_is_not_a_network() -> None:
    settings = load_config_text(config_text("http://127.0.0.1:1", "ns")).switchboard_settings
    assert settings.media_fetch.allow_networks == [ALLOWED_NETWORK]
    assert (settings.media_fetch.max_bytes, settings.media_fetch.timeout_s) == (20971520, 10.0)
    for text, message in (
        ("{allow_networks: [10.0.0.1/8]}", "media_fetch: allow_networks: 10.0.0.1/8 has host bits"),
        ("{allow_networks: [images.internal]}", "does not appear to be an IPv4 or IPv6 network"),
        ("{allow_network: [10.0.0.0/8]}", "media_fetch.allow_network: unknown key"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config_text(f"model_list: []\nswitchboard_settings:\n  media_fetch: {text}\n")
