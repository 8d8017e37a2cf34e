"""Console sessions (issue #21): who is signed in, as which key, without the key in the browser.

A session is two halves that are useless apart:
- the browser holds an HttpOnly, SameSite=Strict cookie `<sid>.<pad>`: a random id and a
  random one-time pad as long as the key;
- Redis holds, under the SHA-256 of the id, the key XOR the pad, the key's hash (the session
  is bound to it: the key that comes out must hash to it), the CSRF token, the role the
  console shows, and a label.

So neither a stolen Redis dump nor a stolen cookie alone yields the key, and signing out (or
the TTL) deletes the Redis half, which kills the cookie. The key is recovered only in the
front door, for the one API call the console makes on the user's behalf (proxy.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import msgspec
from aiohttp import web
from redis.asyncio import Redis

from workers import redis_streams
from workers.redis_streams import Keys

COOKIE = "sb_console"
# Before sign-in: a CSRF token for the sign-in form itself (login CSRF), double-submitted.
PRE_COOKIE = "sb_console_pre"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/ui"
SESSION_TTL_S = 8 * 3600
PRE_TTL_S = 3600
# Keys longer than this are refused at sign-in: the pad rides in a cookie (4 KiB at most).
MAX_KEY_BYTES = 512
SID_BYTES = 24


class Session(msgspec.Struct, frozen=True, kw_only=True):
    key_hash: str  # SHA-256 hex of the key, LiteLLM's hash_token
    masked_key: str  # base64 of key XOR pad
    csrf: str
    role: str
    label: str  # what the header shows: an alias or `sk-...abcd`, never the key
    user_id: str | None = None
    team_ids: list[str] = []  # teams the key's user administers
    created_s: float = 0.0


encode = msgspec.json.Encoder().encode
decode_session = msgspec.json.Decoder(Session).decode


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionStore:
    """Sessions in Redis under the namespace's key names (workers/redis_streams/)."""

    def __init__(self, redis: Redis, keys: Keys, ttl_s: int = SESSION_TTL_S) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s

    async def create(
        self,
        key: str,
        *,
        role: str,
        label: str,
        user_id: str | None,
        team_ids: list[str],
        now_s: float,
    ) -> tuple[str, Session]:
        """A new session for `key`; answers the cookie value and the session."""
        raw = key.encode()
        pad = secrets.token_bytes(len(raw))
        sid = secrets.token_urlsafe(SID_BYTES)
        session = Session(
            key_hash=key_hash(key),
            masked_key=_b64(_xor(raw, pad)),
            csrf=secrets.token_urlsafe(24),
            role=role,
            label=label,
            user_id=user_id,
            team_ids=team_ids,
            created_s=now_s,
        )
        await redis_streams.put_console_session(
            self.redis, self.keys, _sid_hash(sid), encode(session), self.ttl_s
        )
        return f"{sid}.{_b64(pad)}", session

    async def load(self, cookie: str | None) -> tuple[Session, str] | None:
        """The session and its key for a cookie; None when it is unknown, expired or altered."""
        parsed = _parse(cookie)
        if parsed is None:
            return None
        sid, pad = parsed
        stored = await redis_streams.get_console_session(self.redis, self.keys, _sid_hash(sid))
        if stored is None:
            return None
        try:
            session = decode_session(stored)
            masked = _unb64(session.masked_key)
        except (msgspec.DecodeError, ValueError):
            return None
        if len(masked) != len(pad):
            return None
        key = _xor(masked, pad).decode(errors="replace")
        # The binding: a pad from another cookie gives another key, which does not hash right.
        if not hmac.compare_digest(key_hash(key), session.key_hash):
            return None
        return session, key

    async def end(self, cookie: str | None) -> None:
        parsed = _parse(cookie)
        if parsed is not None:
            await redis_streams.drop_console_session(self.redis, self.keys, _sid_hash(parsed[0]))


def _parse(cookie: str | None) -> tuple[str, bytes] | None:
    if not cookie or len(cookie) > 2 * MAX_KEY_BYTES + 64 or cookie.count(".") != 1:
        return None
    sid, pad_text = cookie.split(".")
    try:
        pad = _unb64(pad_text)
    except ValueError:
        return None
    if not sid or not pad:
        return None
    return sid, pad


def set_cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, max_age_s: int
) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Path=/ui,
    and Secure whenever the request came over TLS (directly or as a proxy says)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age_s,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=COOKIE_PATH)


def csrf_matches(request: web.Request, expected: str) -> bool:
    presented = request.headers.get(CSRF_HEADER, "")
    return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())
