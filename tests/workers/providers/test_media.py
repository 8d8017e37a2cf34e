"""The media a request names by URL (Gemini and Bedrock inline it): fetched once per request
under the operator's policy, whatever the retries and fallbacks, and checked per adapter."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.workers.media_servers import ALLOWED_NETWORK, PNG, MediaServer, canary, media_server
from workers.errors import InvalidRequest
from workers.fetch_guard import Fetched, FetchRefused
from workers.http import HttpClient
from workers.providers.media import (
    DEFAULT_POLICY,
    Media,
    MediaFetches,
    MediaPolicy,
    media_type_of,
    usable,
)
from workers.sdk import calls as sdk
from workers.sdk.router import Router
from workers.settings.switchboard import MediaFetch
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion

TIMEOUT_S = 10.0
OPEN = {"allow_networks": [ALLOWED_NETWORK]}
GEMINI = "gemini/gemini-2.5-flash"
BEDROCK = "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0"


def policy(**settings: Any) -> MediaPolicy:
    return MediaPolicy.of(MediaFetch(**{**OPEN, **settings}))


@pytest.fixture
async def images() -> AsyncIterator[MediaServer]:
    async with media_server() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.close()


def with_image(url: str) -> list[dict[str, Any]]:
    question = {"type": "text", "text": "What is this?"}
    return [
        {"role": "user", "content": [question, {"type": "image_url", "image_url": {"url": url}}]}
    ]


# --------------------------------------------------------------------------- the policy


def test_the_default_policy_opens_nothing_internal_and_caps_20_mb_and_10_s():
    assert DEFAULT_POLICY.addresses.allow_hosts == frozenset()
    assert DEFAULT_POLICY.addresses.allow_networks == ()
    assert (DEFAULT_POLICY.max_bytes, DEFAULT_POLICY.timeout_s) == (20 * 1024 * 1024, 10.0)


def test_a_bad_network_in_the_settings_is_refused_at_load():
    with pytest.raises(ValueError, match="allow_networks"):
        MediaFetch(allow_networks=["10.0.0.1/8"])  # host bits set: a typo, not a network


# --------------------------------------------------------------------------- once per request


async def test_a_url_is_fetched_once_per_request_success_or_failure(images, http):
    media = MediaFetches(policy())
    for _ in range(3):
        fetched = await media.fetch(http, f"{images.base_url}/cat.png", None)
        assert isinstance(fetched, Fetched) and fetched.data == PNG
        assert await media.fetch(http, f"{images.base_url}/missing.png", None) == "HTTP 404"
    assert images.hits["/cat.png"] == images.hits["/missing.png"] == 1


async def test_several_urls_are_fetched_together_each_once(images, http):
    media = MediaFetches(policy())
    urls = [f"{images.base_url}/cat.png", f"{images.base_url}/cat", f"{images.base_url}/cat.png"]
    await media.fetch_all(http, urls, None)
    assert images.hits == {"/cat.png": 1, "/cat": 1}
    assert all(isinstance(media.outcome(url), Fetched) for url in urls)


async def test_the_media_of_one_request_share_a_byte_budget(images, http):
    media = MediaFetches(policy(max_bytes=1000, max_request_bytes=1500))
    first = await media.fetch(http, f"{images.base_url}/sized/800", None)
    assert isinstance(first, Fetched)
    second = await media.fetch(http, f"{images.base_url}/sized/800?again", None)
    assert second == "too large (limit 1500 bytes for one request's media)"
    fresh = MediaFetches(policy(max_bytes=1000, max_request_bytes=1500))
    assert await fresh.fetch(http, f"{images.base_url}/sized/1001", None) == (
        "too large (limit 1000 bytes)"
    )


async def test_a_fetch_never_outlasts_the_request(images, http):
    media = MediaFetches(policy(timeout_s=30))
    assert await media.fetch(http, f"{images.base_url}/slow.png", 0.1) == "timed out after 0.1 s"


# --------------------------------------------------------------------------- per adapter


@pytest.mark.parametrize(
    ("content_type", "path", "data", "expected"),
    [
        ("image/PNG", "/x", PNG, "image/png"),
        ("image/jpg", "/x", PNG, "image/jpeg"),
        ("application/octet-stream", "/cat.jpg", PNG, "image/jpeg"),
        ("", "/cat.webp", PNG, "image/webp"),
        ("", "/cat", PNG, "image/png"),
        ("binary/octet-stream", "/cat", b"GIF89a...", "image/gif"),
        ("", "/cat", b"nothing known", ""),
    ],
)
def test_the_media_type_comes_from_the_server_then_the_url_then_the_bytes(
    content_type, path, data, expected
):
    assert media_type_of(Fetched(content_type, data, "http://example.com" + path)) == expected


def test_each_adapter_checks_type_and_size_of_what_was_fetched():
    fetched = Fetched("image/png", PNG, "http://example.com/cat.png")
    assert usable(fetched, accept={"image/png"}, max_bytes=len(PNG)) == Media("image/png", PNG)
    with pytest.raises(FetchRefused, match="^unsupported content type image/png$"):
        usable(fetched, accept={"image/jpeg"}, max_bytes=100)
    with pytest.raises(FetchRefused, match=r"^too large \(limit 8 bytes\)$"):
        usable(fetched, accept={"image/png"}, max_bytes=8)
    with pytest.raises(FetchRefused, match="^HTTP 404$"):
        usable("HTTP 404", accept={"image/png"}, max_bytes=100)


# --------------------------------------------------------------------------- through the SDK


async def test_the_sdk_refuses_internal_urls_by_default(fake: FakeUpstream):
    async with canary() as trap:
        url = f"http://127.0.0.1:{trap.port}/cat.png"
        cases: list[tuple[str, dict[str, Any]]] = [
            (GEMINI, {"api_key": "gemini-key"}),
            (BEDROCK, {"api_key": "bk"}),
        ]
        for model, extra in cases:
            with pytest.raises(InvalidRequest) as caught:
                async with asyncio.timeout(TIMEOUT_S):
                    await sdk.acompletion(
                        model, with_image(url), api_base=fake.base_url, environ={}, **extra
                    )
            param = "messages[0].content[1].image_url"
            assert caught.value.message == f"{param} could not be fetched: address not allowed"
            assert (caught.value.param, caught.value.code) == (param, "invalid_image_url")
        assert trap.untouched and fake.request_count == 0


@pytest.mark.parametrize(
    ("model", "extra"),
    [(GEMINI, {"api_key": "gemini-key"}), (BEDROCK, {"api_key": "bedrock-key"})],
)
async def test_retries_reuse_the_first_fetch(fake, images, model, extra):
    async with asyncio.timeout(TIMEOUT_S):
        response = await sdk.acompletion(
            f"{model}~fail_first=1",
            with_image(f"{images.base_url}/cat.png"),
            api_base=fake.base_url,
            environ={},
            num_retries=2,
            media_fetch=OPEN,
            **extra,
        )
    assert isinstance(response, ChatCompletion)
    assert response.choices[0].message.content
    assert fake.request_count == 2  # a 500, then the answer
    assert images.hits["/cat.png"] == 1


async def test_a_fallback_to_another_provider_reuses_the_first_fetch(fake, images):
    model_list = [
        {
            "model_name": "gemini-down",
            "litellm_params": {
                "model": f"{GEMINI}~status=500",
                "api_base": fake.base_url,
                "api_key": "gemini-key",
            },
        },
        {
            "model_name": "bedrock-up",
            "litellm_params": {
                "model": BEDROCK,
                "api_base": fake.base_url,
                "api_key": "bedrock-key",
            },
        },
    ]
    router = Router(
        model_list, fallbacks=[{"gemini-down": ["bedrock-up"]}], environ={}, media_fetch=OPEN
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            response = await router.acompletion(
                "gemini-down", with_image(f"{images.base_url}/cat.png")
            )
    finally:
        await router.aclose()
    assert isinstance(response, ChatCompletion)
    assert response.choices[0].message.content
    sent = fake.requests[-1].json["messages"][0]["content"][1]
    assert sent == {"image": {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}}
    assert images.hits["/cat.png"] == 1


async def test_a_router_refuses_internal_urls_unless_its_media_fetch_allows_them(fake, images):
    entry: dict[str, Any] = {
        "model_name": "g",
        "litellm_params": {"model": GEMINI, "api_base": fake.base_url},
    }
    entry["litellm_params"]["api_key"] = "gemini-key"
    closed, opened = Router([entry], environ={}), Router([entry], environ={}, media_fetch=OPEN)
    url = f"{images.base_url}/cat.png"
    try:
        async with asyncio.timeout(TIMEOUT_S):
            with pytest.raises(InvalidRequest, match="could not be fetched: address not allowed"):
                await closed.acompletion("g", with_image(url))
            assert images.hits["/cat.png"] == 0
            await opened.acompletion("g", with_image(url))
    finally:
        await closed.aclose()
        await opened.aclose()
    assert images.hits["/cat.png"] == 1


async def test_a_bad_media_fetch_argument_is_a_clear_error(fake: FakeUpstream):
    with pytest.raises(InvalidRequest, match="invalid media_fetch: .*allow_networks") as caught:
        await sdk.acompletion(
            GEMINI,
            with_image("https://example.com/cat.png"),
            api_base=fake.base_url,
            api_key="gemini-key",
            media_fetch={"allow_networks": ["not a network"]},
        )
    assert caught.value.param == "media_fetch" and fake.request_count == 0
