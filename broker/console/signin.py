"""Sign-in, the session's view of itself, and sign-out (`/ui/api/session`).

The role the console shows is learnt from the public API with the key itself (`/key/info`,
`/user/info`, `/team/info`, `/user/list`, `/v1/models`): it only chooses which pages to
show; every action is still decided by the API, so a wrong guess can show a page whose
calls answer 403, never do more.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from broker.console import sessions
from broker.console.state import CONSOLE, ConsoleState
from broker.errors import JSON
from workers.errors import AuthenticationFailed, InvalidRequest, PermissionDenied

MAX_SIGNIN_BYTES = 4096
# Teams looked at to learn which a key's user administers (the rest still work via the API).
MAX_TEAMS_LOOKED_AT = 50

MASTER = "proxy_admin"
KEY_ONLY = "key"
API_KEY = "api_key"  # a config key (switchboard_settings.api_keys): inference only


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    key: str


class Identity(msgspec.Struct, frozen=True):
    role: str
    label: str
    user_id: str | None = None
    team_ids: list[str] = []


encode = msgspec.json.Encoder().encode
decode_signin = msgspec.json.Decoder(SignIn).decode


def _answer(payload: dict[str, Any]) -> web.Response:
    return web.Response(
        body=encode(payload), content_type=JSON, headers={"Cache-Control": "no-store"}
    )


def session_view(session: sessions.Session) -> dict[str, Any]:
    return {
        "signed_in": True,
        "role": session.role,
        "label": session.label,
        "user_id": session.user_id,
        "team_ids": session.team_ids,
        "csrf_token": session.csrf,
    }


async def current(request: web.Request) -> web.Response:
    """Who is signed in; when nobody is, a fresh token for the sign-in form."""
    state = request.app[CONSOLE]
    loaded = await state.store.load(request.cookies.get(sessions.COOKIE))
    if loaded is not None:
        return _answer(session_view(loaded[0]))
    token = secrets.token_urlsafe(24)
    response = _answer({"signed_in": False, "csrf_token": token})
    sessions.set_cookie(response, request, sessions.PRE_COOKIE, token, sessions.PRE_TTL_S)
    return response


async def sign_in(request: web.Request) -> web.Response:
    state = request.app[CONSOLE]
    check_origin(request)
    if not sessions.csrf_matches(request, request.cookies.get(sessions.PRE_COOKIE, "")):
        raise csrf_refused()
    key = (await _read_signin(request)).key.strip()
    if not key or len(key.encode()) > sessions.MAX_KEY_BYTES:
        raise InvalidRequest(
            f"a key is 1 to {sessions.MAX_KEY_BYTES} bytes", param="key", code="invalid_key"
        )
    identity = await identify(state, request, key)
    # Signing in again replaces the session: the old one ends now, not at its expiry.
    await state.store.end(request.cookies.get(sessions.COOKIE))
    cookie, session = await state.store.create(
        key,
        role=identity.role,
        label=identity.label,
        user_id=identity.user_id,
        team_ids=identity.team_ids,
        now_s=time.time(),
    )
    response = _answer(session_view(session))
    sessions.set_cookie(response, request, sessions.COOKIE, cookie, state.store.ttl_s)
    sessions.clear_cookie(response, sessions.PRE_COOKIE)
    return response


async def sign_out(request: web.Request) -> web.Response:
    state = request.app[CONSOLE]
    check_origin(request)
    cookie = request.cookies.get(sessions.COOKIE)
    loaded = await state.store.load(cookie)
    if loaded is not None:
        if not sessions.csrf_matches(request, loaded[0].csrf):
            raise csrf_refused()
        await state.store.end(cookie)
    response = _answer({"signed_in": False})
    sessions.clear_cookie(response, sessions.COOKIE)
    return response


def csrf_refused() -> PermissionDenied:
    return PermissionDenied(
        f"the console's form token is missing or wrong (`{sessions.CSRF_HEADER}`); reload the page",
        code="csrf_failed",
    )


def check_origin(request: web.Request) -> None:
    """A browser names the page's origin on every unsafe request; it must be this host."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser, or an old one: the CSRF token still decides
        return
    expected = {f"http://{request.host}", f"https://{request.host}"}
    if origin not in expected:
        raise PermissionDenied("the request comes from another site", code="csrf_failed")


async def _read_signin(request: web.Request) -> SignIn:
    if request.content_length is not None and request.content_length > MAX_SIGNIN_BYTES:
        raise InvalidRequest("the sign-in body is too large", code="body_too_large")
    body = await request.content.read(MAX_SIGNIN_BYTES + 1)
    if len(body) > MAX_SIGNIN_BYTES:
        raise InvalidRequest("the sign-in body is too large", code="body_too_large")
    try:
        return decode_signin(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            'the body must be JSON: {"key": "sk-..."}', param="key", code="invalid_body"
        ) from exc


async def identify(state: ConsoleState, request: web.Request, key: str) -> Identity:
    """What the key is, asked of the API itself."""
    api = state.loopback
    status, info = await api.json(request, key, "/key/info")
    if status == 200 and isinstance(info, dict):
        return await _database_key(state, request, key, info.get("info") or {})
    if status == 400 and (await api.json(request, key, "/user/list?page_size=1"))[0] == 200:
        return Identity(MASTER, "master key")  # /key/info needs `key` only from the master key
    # Not a management principal, but the API serves it: a config key, or any key on an
    # open gateway (no master key configured): the playground and models are its pages.
    models_status, _ = await api.json(request, key, "/v1/models")
    if models_status == 200:
        return Identity(API_KEY, "config key" if status == 403 else "API key")
    message = _message(info) or "invalid API key"
    raise AuthenticationFailed(f"sign-in refused: {message}", code="console_signin_refused")


async def _database_key(
    state: ConsoleState, request: web.Request, key: str, info: dict[str, Any]
) -> Identity:
    label = str(info.get("key_alias") or info.get("key_name") or "key")
    user_id = info.get("user_id")
    if not isinstance(user_id, str):
        return Identity(KEY_ONLY, label)
    status, user = await state.loopback.json(request, key, f"/user/info?user_id={_q(user_id)}")
    if status != 200 or not isinstance(user, dict):
        return Identity("internal_user_viewer", label, user_id)
    user_info = user.get("user_info") or {}
    role = str(user_info.get("user_role") or "internal_user")
    admin_of = []
    for team_id in list(user_info.get("teams") or [])[:MAX_TEAMS_LOOKED_AT]:
        status, team = await state.loopback.json(request, key, f"/team/info?team_id={_q(team_id)}")
        if status == 200 and isinstance(team, dict) and _administers(team, user_id):
            admin_of.append(str(team_id))
    return Identity(role, label, user_id, admin_of)


def _administers(team: dict[str, Any], user_id: str) -> bool:
    members = (team.get("team_info") or {}).get("members_with_roles") or []
    return any(m.get("user_id") == user_id and m.get("role") == "admin" for m in members)


def _message(payload: object) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return str(payload["error"].get("message") or "")
    return None


def _q(value: object) -> str:
    return quote(str(value), safe="")
