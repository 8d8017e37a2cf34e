"""FakeUpstream as a thread, as a process, and as a registry of provider routes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import aiohttp
import openai
import pytest

from workers.testing import FakeUpstream
from workers.testing.media import PIXEL_PATH, PIXEL_PNG
from workers.testing.server import build_app
from workers.testing.state import FakeState

from .conftest import USER


def test_sync_sdk_against_the_fake_in_a_thread(threaded_fake):
    client = openai.OpenAI(
        base_url=threaded_fake.base_url + "/v1", api_key="sk", max_retries=0, timeout=10
    )
    with client:
        reply = client.chat.completions.create(model="gpt-4o", messages=USER)
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert reply.choices[0].message.content == "This is a fake reply from gpt-4o."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len(threaded_fake.wait_for_requests(2, timeout_s=5)) == 2
    assert threaded_fake.model_counts == {"gpt-4o": 2}


def test_sync_client_timeout_on_hang_is_seen_as_a_disconnect(threaded_fake):
    client = openai.OpenAI(
        base_url=threaded_fake.base_url + "/v1", api_key="sk", max_retries=0, timeout=0.2
    )
    with client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o~hang", messages=USER)
    [disconnect] = threaded_fake.wait_for_disconnects(1, timeout_s=5)
    assert disconnect.path == "/v1/chat/completions"


def test_waiting_in_a_thread_is_bounded(threaded_fake):
    with pytest.raises(TimeoutError):
        threaded_fake.wait_for_requests(1, timeout_s=0.05)


async def test_only_the_chosen_providers_are_served():
    async with FakeUpstream(providers=["azure"]) as fake:
        async with aiohttp.ClientSession() as http:
            url = fake.base_url + "/v1/chat/completions"
            async with http.post(url, json={"model": "gpt-4o", "messages": USER}) as response:
                assert response.status == 404


def test_every_registered_provider_composes_into_one_app_without_clashes():
    app = build_app(FakeState())
    routes = [(r.method, r.resource.canonical) for r in app.router.routes() if r.resource]
    assert len(routes) == len(set(routes))


async def test_record_limit_keeps_the_latest_requests():
    async with FakeUpstream(record_limit=2) as fake:
        async with openai.AsyncOpenAI(
            base_url=fake.base_url + "/v1", api_key="sk", max_retries=0
        ) as sdk:
            for model in ("a", "b", "c"):
                await sdk.chat.completions.create(model=model, messages=USER)
    assert [r.json["model"] for r in fake.requests] == ["b", "c"]
    assert fake.request_count == 3


async def test_closing_the_fake_ends_hanging_requests(fake, client):
    task = asyncio.create_task(client.chat.completions.create(model="m~hang", messages=USER))
    async with asyncio.timeout(5):
        await fake.wait_for_requests(1)
        await fake.close()
        with pytest.raises(openai.APIConnectionError):
            await task
    assert fake.disconnects == []


def test_runs_as_a_process_until_sigterm():
    command = [sys.executable, "-m", "workers.testing", "--port", "0", "--latency", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as server:
        _talk_to_process_then_stop(server)


def _talk_to_process_then_stop(server: subprocess.Popen[bytes]) -> None:
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode()
        assert line.startswith("listening on http://127.0.0.1:")
        client = openai.OpenAI(
            base_url=line.split()[-1] + "/v1", api_key="sk", max_retries=0, timeout=10
        )
        with client:
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert reply.model == "gpt-4o-mini-2024-07-18"
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)


async def test_a_pixel_is_served_for_adapters_that_fetch_images_and_not_recorded():
    async with FakeUpstream() as fake, aiohttp.ClientSession() as http:
        async with http.get(fake.base_url + PIXEL_PATH) as response:
            assert response.content_type == "image/png"
            assert await response.read() == PIXEL_PNG
        assert fake.requests == []
