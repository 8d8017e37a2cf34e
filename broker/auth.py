"""Who may call, and as whom: the master key or a listed API key, sent as
`Authorization: Bearer <key>` or `x-api-key`. The caller's alias labels its metrics."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
from collections.abc import Sequence

import msgspec
from aiohttp import web

from workers.errors import AuthenticationFailed, PermissionDenied
from workers.routing.scope import allows
from workers.settings.switchboard import ApiKey
from workers.tenancy.records import Principal

log = logging.getLogger("switchboard.auth")

MASTER_ALIAS = "master"
ANONYMOUS_ALIAS = "anonymous"
REQUEST_ID_PREFIX = "req_"
NONCE_CHARS = 24
TAG_CHARS = 16
AUTHORIZATION = "Authorization"
X_API_KEY = "x-api-key"


class Hidden(bytes):
    """Bytes that never show themselves in a repr (a key's derived secret)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "b'***'"


class Caller(msgspec.Struct, frozen=True):
    """An authenticated caller: its alias and the models it may call (None: every model)."""

    alias: str
    models: frozenset[str] | None = None
    # Derived from the caller's key: signs the request ids it is given (empty: open gateway).
    secret: Hidden = Hidden()
    # A database key (issue #17): the key and its owners as the Redis mirror has them.
    principal: Principal | None = None
    # The key's hash (LiteLLM's hash_token): what spend rows name; None on an open gateway.
    token: str | None = None

    def new_request_id(self) -> str:
        """A fresh request id; with a key, it carries a tag only that key can make, so no
        other key can resume (read) the request's reply."""
        nonce = os.urandom(12).hex()
        if not self.secret:
            return REQUEST_ID_PREFIX + nonce
        return REQUEST_ID_PREFIX + nonce + self._tag(nonce)

    def may_read(self, request_id: str) -> bool:
        """Whether this caller may resume `request_id`: its own, or any for the master key."""
        if not self.secret or self.alias == MASTER_ALIAS:
            return True
        body = request_id.removeprefix(REQUEST_ID_PREFIX).encode()
        nonce, tag = body[:NONCE_CHARS], body[NONCE_CHARS:]
        return hmac.compare_digest(tag, self._tag(nonce.decode(errors="replace")).encode())

    def _tag(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()[:TAG_CHARS]

    def check_model(self, requested: str, group: str) -> None:
        """Refuse a model outside the key's list; the requested name or its group may match,
        as they are or by a `*` entry (workers/routing/scope.py)."""
        if self.models is None or allows(self.models, requested) or allows(self.models, group):
            return
        raise PermissionDenied(
            f"API key `{self.alias}` may not call model `{requested}`; it may call: "
            f"{', '.join(sorted(self.models))}",
            param="model",
            code="key_model_access_denied",
        )

    def may_list(self, model: str) -> bool:
        return self.models is None or allows(self.models, model)

    @property
    def owner(self) -> str:
        """Who owns what this caller stores (files and batches, issue #20; stored responses,
        issue #18): stable for a key, derived from it, and saying nothing of it; on an open
        gateway, everyone alike."""
        if not self.secret:
            return ANONYMOUS_ALIAS
        return _owner_of(self.secret)


ANONYMOUS = Caller(ANONYMOUS_ALIAS)
# Request-id tags are keyed by HMAC(key, this), never by the lookup digest: knowing one does
# not give the other.
TAG_KEY_CONTEXT = b"switchboard request id tag"
OWNER_CONTEXT = b"switchboard owner"


class Authenticator:
    def __init__(self, master_key: str | None, api_keys: Sequence[ApiKey] = ()) -> None:
        # Keys are looked up by their SHA-256 digest, so the probe's timing says nothing
        # about how much of a guessed key matches.
        self._callers: dict[bytes, Caller] = {}
        for api_key in api_keys:
            models = frozenset(api_key.models) if api_key.models else None
            key = str(api_key.key)
            token = hashlib.sha256(key.encode()).hexdigest()
            self._callers[_digest(key)] = Caller(api_key.alias, models, _tag_key(key), None, token)
        if master_key:
            token = hashlib.sha256(master_key.encode()).hexdigest()
            master = Caller(MASTER_ALIAS, None, _tag_key(master_key), None, token)
            self._callers[_digest(master_key)] = master
        self.is_open = not self._callers
        if self.is_open:
            log.warning(
                "NO MASTER KEY CONFIGURED: every client may call this gateway. "
                "Set general_settings.master_key to require `Authorization: Bearer <key>`."
            )

    def check(self, request: web.Request) -> Caller:
        if self.is_open:
            return ANONYMOUS
        presented = presented_key(request)
        caller = self._callers.get(_digest(presented))
        if caller is None:
            raise AuthenticationFailed("invalid API key")
        return caller

    def static(self, presented: str) -> Caller | None:
        """The master key's or a config key's caller, if `presented` is one of them."""
        return self._callers.get(_digest(presented))

    def caller_by_owner(self, owner: str) -> Caller | None:
        """The caller owning a batch (its runner calls as that key); None once the key is
        gone, so a revoked key's batch stops."""
        if self.is_open:
            return ANONYMOUS if owner == ANONYMOUS_ALIAS else None
        for caller in self._callers.values():
            if caller.owner == owner:
                return caller
        return None

    def is_operator(self, request: web.Request, metrics_key: str | None) -> bool:
        """Whether the request carries the master key or `metrics_key`: the callers who may
        read /metrics and the detailed readiness on the API port. On an open gateway (no
        key configured at all) everyone may, unless a metrics key is set."""
        if self.is_open and metrics_key is None:
            return True
        try:
            presented = presented_key(request)
        except AuthenticationFailed:
            return False
        caller = self._callers.get(_digest(presented))
        if caller is not None and caller.alias == MASTER_ALIAS:
            return True
        return metrics_key is not None and hmac.compare_digest(
            _digest(presented), _digest(metrics_key)
        )


@functools.lru_cache(maxsize=4096)
def _owner_of(secret: bytes) -> str:
    # Every request's envelope names its owner: one HMAC per key, not per request (#22).
    return "key_" + hmac.new(secret, OWNER_CONTEXT, hashlib.sha256).hexdigest()[:32]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def tag_key(key: str) -> Hidden:
    return _tag_key(key)


def _tag_key(key: str) -> Hidden:
    return Hidden(hmac.new(key.encode(), TAG_KEY_CONTEXT, hashlib.sha256).digest())


def presented_key(request: web.Request) -> str:
    """The key a request carries: `Authorization: Bearer <key>`, else `x-api-key: <key>`.
    Raises AuthenticationFailed saying what is wrong with what was sent instead."""
    authorization = _header_text(request, AUTHORIZATION)
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = _header_text(request, X_API_KEY)
    if key is not None:
        return key
    if authorization is not None:
        raise AuthenticationFailed(
            "the Authorization header must be `Bearer <key>`",
            param=AUTHORIZATION,
            code="invalid_authorization_header",
        )
    raise AuthenticationFailed(
        "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        code="missing_api_key",
    )


def _header_text(request: web.Request, name: str) -> str | None:
    """A header's stripped value; None when absent or blank. aiohttp keeps bytes that are
    not UTF-8 as surrogates, which no key can match: refuse them by the header's name."""
    value = request.headers.get(name, "").strip()
    if not value:
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        raise AuthenticationFailed(
            f"the {name} header is not valid UTF-8 text", param=name, code="invalid_api_key"
        ) from None
    return value
