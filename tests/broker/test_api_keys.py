"""API keys besides the master key: each one authenticates, is held to its model list,
labels its requests, tokens and cost on /metrics by its alias (never by the key), and may
resume only its own requests' replies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from broker.auth import Caller, Hidden
from broker.config import ConfigError, load_config_text
from tests.broker.harness import RunningFrontDoor, make_config, service
from tests.scrape import Scrape, scrape_url
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hi"}]
MASTER = "sk-master-test"
TEAM_A = "sk-team-a-0123456789"
TEAM_B = "sk-team-b-0123456789"
KEYS = f"[{{alias: team-a, key: {TEAM_A}, models: [gpt-test]}}, {{alias: team-b, key: {TEAM_B}}}]"


@pytest.fixture
async def door(fake: FakeUpstream, namespace: str) -> AsyncIterator[RunningFrontDoor]:
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        settings={"api_keys": KEYS},
        general=f"general_settings:\n  master_key: {MASTER}\n",
    )
    async with service(config) as ([front], _workers):
        yield front


async def call(
    door: RunningFrontDoor, key: str, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(door.url + path, json=body, headers={"Authorization": f"Bearer {key}"}) as reply,
    ):
        return reply.status, await reply.json(content_type=None)


async def metrics(door: RunningFrontDoor) -> Scrape:
    # /metrics on the API port is the master key's (or the metrics key's).
    headers = {"Authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        return await scrape_url(http, door.url + "/metrics")


async def test_each_key_is_counted_under_its_alias(door: RunningFrontDoor) -> None:
    for key in (TEAM_A, TEAM_A, TEAM_B, MASTER):
        status, body = await call(door, key, {"model": "gpt-test", "messages": HELLO})
        assert status == 200, body
    status, _ = await call(door, TEAM_B, {"model": "embed-test", "input": "hi"}, "/v1/embeddings")
    assert status == 200

    scraped = await metrics(door)
    requests = "switchboard_api_key_requests_total"
    assert scraped.value(requests, api_key_alias="team-a", status="200") == 2
    assert scraped.value(requests, api_key_alias="team-b", status="200") == 2
    assert scraped.value(requests, api_key_alias="master", status="200") == 1
    # The fake's usage is priced from the gpt-4o-mini table: each key's cost is its own share.
    cost = "switchboard_api_key_cost_usd_total"
    team_a_cost = scraped.value(cost, api_key_alias="team-a")
    assert team_a_cost > 0
    assert scraped.value(cost, api_key_alias="master") == pytest.approx(team_a_cost / 2)
    tokens = "switchboard_api_key_tokens_total"
    assert scraped.value(tokens, api_key_alias="team-a", kind="prompt") > 0
    assert scraped.value(tokens, api_key_alias="team-a", kind="completion") > 0
    page = " ".join(f"{name}{sorted(labels)}" for name, labels in scraped.values)
    assert TEAM_A not in page and MASTER not in page


async def test_a_key_is_refused_a_model_outside_its_list(
    door: RunningFrontDoor, fake: FakeUpstream
) -> None:
    before = len(fake.requests)
    status, body = await call(door, TEAM_A, {"model": "groq-test", "messages": HELLO})
    assert status == 403
    assert body["error"]["type"] == "permission_error"
    assert body["error"]["code"] == "key_model_access_denied"
    assert body["error"]["param"] == "model"
    assert "team-a" in body["error"]["message"] and "gpt-test" in body["error"]["message"]
    assert TEAM_A not in body["error"]["message"]
    status, body = await call(door, TEAM_A, {"model": "embed-test", "input": "x"}, "/v1/embeddings")
    assert status == 403
    assert len(fake.requests) == before  # refused before anything was queued
    # An unknown model's 404 lists only what this key may call.
    status, body = await call(door, TEAM_A, {"model": "nope", "messages": HELLO})
    assert status == 404
    assert body["error"]["message"].endswith("available models: gpt-test")


async def test_models_lists_what_the_key_may_call(door: RunningFrontDoor) -> None:
    async def listed(key: str) -> list[str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(door.url + "/v1/models", headers={"x-api-key": key}) as reply,
        ):
            assert reply.status == 200
            return [card["id"] for card in (await reply.json())["data"]]

    assert await listed(TEAM_A) == ["gpt-test"]
    assert set(await listed(TEAM_B)) == {"gpt-test", "slow", "groq-test", "embed-test"}
    assert await listed(MASTER) == await listed(TEAM_B)


async def test_an_unknown_key_is_still_refused(door: RunningFrontDoor) -> None:
    status, body = await call(door, "sk-team-c-0123456789", {"model": "gpt-test", "messages": []})
    assert status == 401
    assert body["error"]["type"] == "authentication_error"


async def test_without_any_key_configured_callers_are_anonymous(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    async with service(config) as ([front], _workers):
        status, _ = await call(front, "anything", {"model": "gpt-test", "messages": HELLO})
        assert status == 200
        scraped = await metrics(front)
    assert scraped.value(
        "switchboard_api_key_requests_total", api_key_alias="anonymous", status="200"
    )


async def test_api_keys_alone_close_the_gateway(fake: FakeUpstream, namespace: str) -> None:
    config = make_config(fake.base_url + "/v1", namespace, settings={"api_keys": KEYS})
    async with service(config) as ([front], _workers):
        status, _ = await call(front, "anything", {"model": "gpt-test", "messages": HELLO})
        assert status == 401
        status, _ = await call(front, TEAM_A, {"model": "gpt-test", "messages": HELLO})
        assert status == 200


MODELS = "model_list: [{model_name: a, litellm_params: {model: openai/a}}]\n"


def test_a_key_that_is_the_master_key_fails_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(
            MODELS
            + "general_settings: {master_key: sk-the-same-key}\n"
            + "switchboard_settings: {api_keys: [{alias: x, key: sk-the-same-key}]}\n",
            {},
        )
    assert str(info.value) == "switchboard_settings.api_keys[0].key: is general_settings.master_key"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            "[{alias: x, key: sk-long-enough, models: [b]}]",
            "switchboard_settings.api_keys[0].models[0]: no model group or alias named 'b'",
        ),
        (
            "[{alias: x, key: sk-long-one}, {alias: x, key: sk-long-two}]",
            "switchboard_settings: api_keys: aliases must be distinct",
        ),
        (
            "[{alias: x, key: sk-long-one}, {alias: y, key: sk-long-one}]",
            "switchboard_settings: api_keys: two entries have the same key",
        ),
        (
            "[{alias: master, key: sk-long-one}]",
            "switchboard_settings: api_keys: anonymous and master are reserved aliases",
        ),
        (
            "[{alias: 'team a', key: sk-long-one}]",
            "switchboard_settings.api_keys[0].alias: expected str matching regex",
        ),
        ("[{alias: x, key: short}]", "switchboard_settings.api_keys[0]: key must be at least 8"),
        ("[{alias: x, key: sk-long-one, budget: 3}]", "switchboard_settings.api_keys[0]"),
    ],
)
def test_a_bad_key_entry_fails_at_load_with_its_path(keys: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(MODELS + f"switchboard_settings: {{api_keys: {keys}}}\n", {})
    assert message in str(info.value)
    assert "sk-long" not in str(info.value) and "short" not in str(info.value).split(":")[-1]


def test_a_key_may_name_a_model_group_alias() -> None:
    config = load_config_text(
        MODELS
        + "router_settings: {model_group_alias: {b: a}}\n"
        + "switchboard_settings: {api_keys: [{alias: x, key: sk-long-enough, models: [b]}]}\n",
        {},
    )
    assert config.switchboard_settings.api_keys[0].models == ["b"]


async def test_only_the_key_that_made_a_request_may_resume_it(door: RunningFrontDoor) -> None:
    body = {"model": "gpt-test", "messages": HELLO, "stream": True}
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {TEAM_A}"}
        async with http.post(door.url + "/v1/chat/completions", json=body, headers=headers) as r:
            assert r.status == 200
            request_id = r.headers["x-request-id"]
            await r.read()

        async def resume(key: str) -> tuple[int, str]:
            url = f"{door.url}/v1/streams/{request_id}?after=0"
            async with http.get(url, headers={"x-api-key": key}) as response:
                return response.status, await response.text()

        status, own = await resume(TEAM_A)
        assert status == 200 and own.endswith("data: [DONE]\n\n")
        status, other = await resume(TEAM_B)
        assert status == 404
        assert json.loads(other)["error"]["code"] == "stream_not_found"
        assert await resume(MASTER) == (200, own)  # the admin may read any


def test_a_request_id_made_for_one_key_does_not_verify_for_another() -> None:
    a, b = Caller("a", secret=Hidden(b"1" * 32)), Caller("b", secret=Hidden(b"2" * 32))
    request_id = a.new_request_id()
    assert a.may_read(request_id) and not b.may_read(request_id)
    assert not a.may_read(request_id[:-1] + ("0" if request_id[-1] != "0" else "1"))
    assert not a.may_read(b.new_request_id())
    assert Caller("anonymous").new_request_id() != Caller("anonymous").new_request_id()
    assert not a.may_read(request_id + "é") and not a.may_read("req_short")
    assert "***" in repr(a) and "1111" not in repr(a)


def test_a_key_comes_from_the_environment_and_never_shows() -> None:
    config = load_config_text(
        MODELS + "switchboard_settings: {api_keys: [{alias: x, key: os.environ/TEAM_KEY}]}\n",
        {"TEAM_KEY": "sk-from-the-environment"},
    )
    (api_key,) = config.switchboard_settings.api_keys
    assert str(api_key.key) == "sk-from-the-environment"
    assert "sk-from-the-environment" not in repr(config)
