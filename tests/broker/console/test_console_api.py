"""The console's server side (issue #21): sign-in and its session cookie, CSRF on every call,
sign-out, the proxy to the public API (roles decided by the API), security headers, and no
raw key anywhere a browser or Redis could show it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from redis.asyncio import Redis
from yarl import URL

from tests.broker.console.conftest import MASTER, STATIC
from tests.broker.console.console_client import ConsoleClient
from tests.broker.harness import RunningFrontDoor, make_config, service
from tests.broker.management.conftest import Api, general
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

UPSTREAM_KEY = "sk-fake"  # every test model's api_key (tests/broker/harness.py)


@pytest.fixture
async def console(door: RunningFrontDoor) -> AsyncIterator[ConsoleClient]:
    async with aiohttp.ClientSession(cookie_jar=ConsoleClient.jar()) as http:
        yield ConsoleClient(http, door.url)


async def test_master_key_signs_in_with_an_httponly_strict_cookie_bound_to_nothing_readable(
    console: ConsoleClient, redis: Redis, namespace: str
) -> None:
    status, data, response = await console.sign_in(MASTER)
    assert status == 200, data
    assert data["role"] == "proxy_admin" and data["label"] == "master key"
    cookie = response.cookies["sb_console"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ui"
    assert MASTER not in cookie.value and MASTER not in str(data)
    stored = [await redis.get(k) async for k in redis.scan_iter(f"{namespace}:console:*")]
    assert len(stored) == 1 and MASTER.encode() not in stored[0]
    assert (await console.whoami())["signed_in"] is True


async def test_sign_in_without_the_form_token_is_refused(console: ConsoleClient) -> None:
    await console.whoami()
    async with console.http.post(
        console.url + "/ui/api/session", json={"key": MASTER}, headers={"X-CSRF-Token": "forged"}
    ) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "csrf_failed"


async def test_a_call_without_the_session_token_or_from_another_site_is_refused(
    console: ConsoleClient,
) -> None:
    await console.sign_in(MASTER)
    status, data, _ = await console.call("GET", "/key/list", csrf="")
    assert status == 403 and data["error"]["code"] == "csrf_failed"
    status, data, _ = await console.call("POST", "/key/generate", {}, csrf="wrong")
    assert status == 403 and data["error"]["code"] == "csrf_failed"
    async with console.http.post(
        console.url + "/ui/api/call/key/generate",
        json={},
        headers={"X-CSRF-Token": console.csrf, "Origin": "https://evil.example"},
    ) as response:
        assert response.status == 403


async def test_keys_are_created_listed_blocked_and_deleted_through_the_public_api(
    console: ConsoleClient, api: Api
) -> None:
    await console.sign_in(MASTER)
    status, created, _ = await console.call(
        "POST", "/key/generate", {"key_alias": "search", "max_budget": 5}
    )
    assert status == 200, created
    assert created["key"].startswith("sk-")
    status, listed, _ = await console.call("GET", "/key/list?return_full_object=true")
    assert [k["key_alias"] for k in listed["keys"]] == ["search"]
    assert created["key"] not in str(listed)
    status, _, _ = await console.call("POST", "/key/block", {"key": created["token_id"]})
    assert status == 200
    _, info = await api.get("/key/info", key="search")
    assert info["info"]["blocked"] is True
    # The API's own validation message comes back as it is.
    status, refused, _ = await console.call("POST", "/key/generate", {"max_budget": -1})
    assert status == 400 and "max_budget" in str(refused["error"])
    status, _, _ = await console.call("POST", "/key/delete", {"keys": [created["token_id"]]})
    assert status == 200


async def test_an_internal_user_gets_the_apis_403_on_admin_actions(
    console: ConsoleClient, api: Api
) -> None:
    user = await api.ok("POST", "/user/new", {"user_id": "ann", "user_role": "internal_user"})
    status, data, _ = await console.sign_in(user["key"])
    assert status == 200 and data["role"] == "internal_user" and data["user_id"] == "ann"
    for method, path, body in [
        ("GET", "/user/list", None),
        ("POST", "/team/new", {"team_id": "t"}),
        ("POST", "/user/new", {"user_id": "bob"}),
        ("GET", "/audit/logs", None),
        ("GET", "/metrics", None),
    ]:
        status, answer, _ = await console.call(method, path, body)
        assert status == 403, (path, status, answer)
    status, own, _ = await console.call("POST", "/key/generate", {"key_alias": "mine"})
    assert status == 200 and own["user_id"] == "ann"


async def test_a_config_key_signs_in_for_models_and_the_playground_only(
    console: ConsoleClient,
) -> None:
    status, data, _ = await console.sign_in(STATIC)
    assert status == 200 and data["role"] == "api_key"
    status, models, _ = await console.call("GET", "/v1/models")
    assert status == 200 and models["data"]
    status, _, _ = await console.call("GET", "/key/list")
    assert status == 403


async def test_an_unknown_key_is_refused_with_the_apis_reason(console: ConsoleClient) -> None:
    status, data, _ = await console.sign_in("sk-nobody-knows-this-key")
    assert status == 401 and data["error"]["code"] == "console_signin_refused"
    assert "sk-nobody" not in data["error"]["message"]


async def test_signing_out_kills_the_cookie_even_when_replayed(console: ConsoleClient) -> None:
    await console.sign_in(MASTER)
    cookie = console.http.cookie_jar.filter_cookies(URL(console.url + "/ui"))["sb_console"].value
    csrf = console.csrf
    assert await console.sign_out() == 200
    async with aiohttp.ClientSession() as other:
        async with other.get(
            console.url + "/ui/api/call/key/list",
            headers={"Cookie": f"sb_console={cookie}", "X-CSRF-Token": csrf},
        ) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "console_signed_out"


async def test_a_cookie_with_another_pad_is_no_session(console: ConsoleClient) -> None:
    await console.sign_in(MASTER)
    cookie = console.http.cookie_jar.filter_cookies(URL(console.url + "/ui"))["sb_console"].value
    sid, pad = cookie.split(".")
    tampered = f"{sid}.{('A' if pad[0] != 'A' else 'B')}{pad[1:]}"
    async with aiohttp.ClientSession() as other:
        async with other.get(
            console.url + "/ui/api/call/key/list",
            headers={"Cookie": f"sb_console={tampered}", "X-CSRF-Token": console.csrf},
        ) as response:
            assert response.status == 401


async def test_only_the_paths_the_pages_use_are_reachable(console: ConsoleClient) -> None:
    await console.sign_in(MASTER)
    for method, path in [
        ("GET", "/openapi.json"),
        ("POST", "/budget/delete"),
        ("GET", "/key/list/extra"),
        ("DELETE", "/key/list"),
    ]:
        status, data, _ = await console.call(method, path, {} if method == "POST" else None)
        assert status in (404, 405), (path, data)
        assert set(data) == {"error"}


async def test_pages_carry_the_security_headers_and_no_key(door: RunningFrontDoor) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/ui", "/ui/", "/ui/static/app.js", "/ui/static/style.css", "/ui/api/session"):
            async with http.get(door.url + path) as response:
                assert response.status == 200, path
                headers = response.headers
                assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
                assert headers["X-Frame-Options"] == "DENY"
                assert headers["Referrer-Policy"] == "no-referrer"
                assert MASTER not in await response.text()


async def test_the_playground_streams_through_the_console_with_the_gateways_headers(
    console: ConsoleClient,
) -> None:
    await console.sign_in(MASTER)
    body = {
        "model": "gpt-test",
        "stream": True,
        "messages": [{"role": "user", "content": "hello"}],
    }
    status, text, response = await console.call("POST", "/v1/chat/completions", body)
    assert status == 200, text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["x-request-id"].startswith("req_")
    assert "x-switchboard-deployment" in response.headers
    assert "data: [DONE]" in text


async def test_an_open_gateway_signs_in_any_key_for_the_playground_and_live_figures(
    namespace: str, fake: FakeUpstream
) -> None:
    # No master key, no key list, no database: any key is served. (`switchboard up --demo`
    # is not this: it makes a master key, docs/console.md.)
    config = make_config(fake.base_url + "/v1", namespace)
    async with (
        service(config, workers=1) as ([door], _),
        aiohttp.ClientSession(cookie_jar=ConsoleClient.jar()) as http,
    ):
        console = ConsoleClient(http, door.url)
        status, data, _ = await console.sign_in("anything")
        assert status == 200 and data["role"] == "api_key", data
        status, _, _ = await console.call("GET", "/metrics")
        assert status == 200
        status, text, _ = await console.call(
            "POST",
            "/v1/chat/completions",
            {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert status == 200 and text["choices"], text


async def test_signing_in_again_ends_the_previous_session(
    console: ConsoleClient, redis: Redis, namespace: str
) -> None:
    await console.sign_in(MASTER)
    await console.sign_in(MASTER)
    assert len([k async for k in redis.scan_iter(f"{namespace}:console:*")]) == 1


async def test_leaving_the_playground_mid_stream_cancels_the_upstream_call(
    namespace: str, fake: FakeUpstream, console_database: Database, console_database_url: str
) -> None:
    # The console's call is the browser's: its disconnect reaches the provider call too.
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        general=general(console_database_url),
        settings={"disconnect_grace_s": 0},
    )
    async with (
        service(config, workers=1) as ([door], _),
        aiohttp.ClientSession(cookie_jar=ConsoleClient.jar()) as http,
    ):
        console = ConsoleClient(http, door.url)
        await console.sign_in(MASTER)
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with http.post(
            door.url + "/ui/api/call/v1/chat/completions",
            json=body,
            headers={"X-CSRF-Token": console.csrf},
        ) as response:
            assert response.status == 200
            await response.content.readuntil(b"\n\n")  # the first event is here
            response.close()  # the browser leaves the page
        [gone] = await asyncio.wait_for(fake.wait_for_disconnects(1), 10)
        assert gone.model.startswith("gpt-4o-mini~")
