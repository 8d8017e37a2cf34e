"""The console's security promises (issue #21): a signed-in key without the role gets 403
on every management action the pages offer, and only a browser that is not signed in gets
401; no answer a browser gets holds the master key, an upstream API key or another key;
hostile bodies to the console's forms get a 4xx in the API's error shape, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import strategies as st

from tests.broker.console.conftest import MASTER
from tests.broker.console.console_client import ConsoleClient
from tests.broker.harness import RunningFrontDoor
from tests.broker.management.conftest import Api
from tests.security.fuzz_cases import collect
from tests.security.fuzz_values import HOSTILE_VALUE, WRONG_TYPES, serialize

UPSTREAM_KEY = "sk-fake"  # the config's api_key for every model (tests/broker/harness.py)


@pytest.fixture
async def console(door: RunningFrontDoor) -> AsyncIterator[ConsoleClient]:
    async with aiohttp.ClientSession(cookie_jar=ConsoleClient.jar()) as http:
        yield ConsoleClient(http, door.url)


async def seed(api: Api) -> dict[str, Any]:
    """A team with an admin and a member, a key of each, and a user whose key only reads."""
    await api.ok("POST", "/team/new", {"team_id": "core", "max_budget": 10})
    lead = await api.ok("POST", "/user/new", {"user_id": "lead", "teams": ["core"]})
    await api.ok(
        "POST", "/team/member_update", {"team_id": "core", "user_id": "lead", "role": "admin"}
    )
    viewer = await api.ok(
        "POST", "/user/new", {"user_id": "val", "user_role": "internal_user_viewer"}
    )
    loose = await api.ok("POST", "/key/generate", {"key_alias": "loose"})
    return {"lead": lead["key"], "viewer": viewer["key"], "loose": loose}


def actions(loose_token: str) -> list[tuple[str, str, Any]]:
    """Every management action a page offers, each with a body the API would accept from an
    admin, so that a refusal can only come from the role."""
    key = {"key": loose_token}
    return [
        ("POST", "/key/generate", {"key_alias": "stolen", "team_id": "core"}),
        ("POST", "/key/update", {**key, "max_budget": 1000}),
        ("POST", "/key/block", key),
        ("POST", "/key/unblock", key),
        ("POST", "/key/regenerate", key),
        ("POST", "/key/delete", {"keys": [loose_token]}),
        ("POST", "/user/new", {"user_id": "mallory", "user_role": "proxy_admin"}),
        ("POST", "/user/update", {"user_id": "lead", "user_role": "proxy_admin"}),
        ("POST", "/user/delete", {"user_ids": ["lead"]}),
        ("POST", "/team/new", {"team_id": "other"}),
        ("POST", "/team/update", {"team_id": "core", "max_budget": 1e6}),
        ("POST", "/team/delete", {"team_ids": ["core"]}),
        (
            "POST",
            "/team/member_add",
            {"team_id": "core", "member": {"user_id": "m", "role": "admin"}},
        ),
        ("POST", "/team/member_update", {"team_id": "core", "user_id": "lead", "role": "user"}),
        ("POST", "/team/member_delete", {"team_id": "core", "user_id": "lead"}),
        ("GET", "/user/list", None),
        ("GET", "/audit/logs", None),
        ("GET", "/global/spend/report", None),
        ("GET", "/metrics", None),
    ]


async def test_a_read_only_key_is_refused_every_management_action(
    console: ConsoleClient, api: Api
) -> None:
    seeded = await seed(api)
    status, who, _ = await console.sign_in(seeded["viewer"])
    assert status == 200 and who["role"] == "internal_user_viewer"
    for method, path, body in actions(seeded["loose"]["token_id"]):
        status, answer, _ = await console.call(method, path, body)
        assert status == 403, (path, status, answer)
        assert set(answer) == {"error"}, (path, answer)
    # Nothing changed behind the refusals.
    _, info = await api.get("/key/info", key="loose")
    assert info["info"]["blocked"] is False and info["info"]["max_budget"] is None
    # Signed out, the same calls are a 401: the console no longer knows who asks.
    csrf = console.csrf
    assert await console.sign_out() == 200
    for method, path, body in actions(seeded["loose"]["token_id"]):
        status, answer, _ = await console.call(method, path, body, csrf=csrf)
        assert status == 401 and answer["error"]["code"] == "console_signed_out", path


async def test_a_team_admin_manages_its_team_and_nothing_more(
    console: ConsoleClient, api: Api
) -> None:
    seeded = await seed(api)
    status, who, _ = await console.sign_in(seeded["lead"])
    assert status == 200 and who["team_ids"] == ["core"]
    status, _, _ = await console.call(
        "POST",
        "/team/member_add",
        {"team_id": "core", "member": {"user_id": "newbie", "role": "user"}},
    )
    assert status == 200
    for method, path, body in actions(seeded["loose"]["token_id"]):
        if path in (
            "/key/generate",
            "/team/member_add",
            "/team/member_update",
            "/team/member_delete",
        ):
            continue  # a team admin may do these in its own team
        status, answer, _ = await console.call(method, path, body)
        assert status == 403, (path, status, answer)


async def test_no_answer_a_browser_gets_holds_a_secret(
    console: ConsoleClient, api: Api, door: RunningFrontDoor
) -> None:
    seeded = await seed(api)
    secrets = [MASTER, UPSTREAM_KEY, seeded["lead"], seeded["viewer"], seeded["loose"]["key"]]
    status, _, _ = await console.sign_in(MASTER)
    assert status == 200
    for path in [
        "/key/list?return_full_object=true",
        "/key/info?key=loose",
        "/user/list",
        "/user/info?user_id=lead",
        "/team/list",
        "/team/info?team_id=core",
        "/spend/logs",
        "/global/spend/report",
        "/audit/logs",
        "/v1/models",
        "/metrics",
        "/health/readiness",
    ]:
        status, answer, response = await console.call("GET", path)
        assert status == 200, (path, answer)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        for secret in secrets:
            assert secret not in text, (path, secret[:6])
            assert all(secret not in v for v in response.headers.values())
    async with aiohttp.ClientSession() as http:
        for path in ["/ui", "/ui/api/session", "/ui/static/app.js", "/ui/static/keys.js"]:
            async with http.get(door.url + path) as page:
                body = await page.text()
                assert all(secret not in body for secret in secrets), path


SIGN_IN_BODIES = st.one_of(
    st.fixed_dictionaries({"key": HOSTILE_VALUE}),
    st.dictionaries(st.sampled_from(["key", "x", "", "__proto__"]), HOSTILE_VALUE, max_size=3),
    st.sampled_from(WRONG_TYPES),
)
FORM_BODIES = st.tuples(
    st.sampled_from(
        [
            "/key/generate",
            "/key/update",
            "/key/block",
            "/team/new",
            "/team/member_add",
            "/user/new",
            "/v1/chat/completions",
        ]
    ),
    st.dictionaries(
        st.sampled_from(
            [
                "key",
                "key_alias",
                "team_id",
                "models",
                "max_budget",
                "rpm_limit",
                "duration",
                "member",
                "user_id",
                "messages",
                "model",
                "stream",
            ]
        ),
        HOSTILE_VALUE,
        max_size=4,
    ),
)


def assert_refused_in_shape(status: int, body: bytes, what: Any) -> None:
    assert status < 500, (status, what, body[:200])
    if status >= 400:
        payload = json.loads(body)
        assert set(payload) == {"error"} and set(payload["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }, (what, payload)


async def test_hostile_sign_in_bodies_are_refused_in_the_apis_shape(
    console: ConsoleClient,
) -> None:
    for body in collect(SIGN_IN_BODIES, 60):
        await console.whoami()  # a fresh sign-in token
        async with console.http.post(
            console.url + "/ui/api/session",
            data=serialize(body),
            headers={"X-CSRF-Token": console.csrf, "Content-Type": "application/json"},
        ) as response:
            assert_refused_in_shape(response.status, await response.read(), body)


async def test_hostile_form_bodies_through_the_console_get_no_5xx(
    console: ConsoleClient,
) -> None:
    await console.sign_in(MASTER)
    for path, body in collect(FORM_BODIES, 80):
        async with console.http.post(
            console.url + "/ui/api/call" + path,
            data=serialize(body),
            headers={"X-CSRF-Token": console.csrf, "Content-Type": "application/json"},
        ) as response:
            payload = await response.read()
            if response.content_type != "text/event-stream":
                assert_refused_in_shape(response.status, payload, (path, body))
