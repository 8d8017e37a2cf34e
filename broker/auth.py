"""Who may call, and as whom: the master key or a listed API key, sent as
`Authorization: Bearer <key>` or `x-api-key`. The caller's alias labels its metrics."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import msgspec
from aiohttp import web

from workers.errors import AuthenticationFailed, PermissionDenied
from workers.settings.switchboard import ApiKey

log = logging.getLogger("switchboard.auth")

MASTER_ALIAS = "master"
ANONYMOUS_ALIAS = "anonymous"


class Caller(msgspec.Struct, frozen=True):
    """An authenticated caller: its alias and the models it may call (None: every model)."""

    alias: str
    models: frozenset[str] | None = None

    def check_model(self, requested: str, group: str) -> None:
        """Refuse a model outside the key's list; the requested name or its group may match."""
        if self.models is None or requested in self.models or group in self.models:
            return
        raise PermissionDenied(
            f"API key `{self.alias}` may not call model `{requested}`; it may call: "
            f"{', '.join(sorted(self.models))}",
            param="model",
            code="key_model_access_denied",
        )

    def may_list(self, model: str) -> bool:
        return self.models is None or model in self.models


MASTER = Caller(MASTER_ALIAS)
ANONYMOUS = Caller(ANONYMOUS_ALIAS)


class Authenticator:
    def __init__(self, master_key: str | None, api_keys: Sequence[ApiKey] = ()) -> None:
        # Keys are looked up by their SHA-256 digest, so the probe's timing says nothing
        # about how much of a guessed key matches.
        self._callers: dict[bytes, Caller] = {
            _digest(str(api_key.key)): Caller(
                api_key.alias, frozenset(api_key.models) if api_key.models else None
            )
            for api_key in api_keys
        }
        if master_key:
            self._callers[_digest(master_key)] = MASTER
        self.is_open = not self._callers
        if self.is_open:
            log.warning(
                "NO MASTER KEY CONFIGURED: every client may call this gateway. "
                "Set general_settings.master_key to require `Authorization: Bearer <key>`."
            )

    def check(self, request: web.Request) -> Caller:
        if self.is_open:
            return ANONYMOUS
        presented = _presented_key(request)
        if presented is None:
            raise AuthenticationFailed(
                "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
                code="missing_api_key",
            )
        caller = self._callers.get(_digest(presented))
        if caller is None:
            raise AuthenticationFailed("invalid API key")
        return caller


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None
