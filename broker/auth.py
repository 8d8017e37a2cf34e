"""Who may call: the master key, as `Authorization: Bearer <key>` or `x-api-key`."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from workers.errors import AuthenticationFailed

log = logging.getLogger("switchboard.auth")


class Authenticator:
    def __init__(self, master_key: str | None) -> None:
        self._master_key = master_key.encode() if master_key else None
        if master_key is None:
            log.warning(
                "NO MASTER KEY CONFIGURED: every client may call this gateway. "
                "Set general_settings.master_key to require `Authorization: Bearer <key>`."
            )

    def check(self, request: web.Request) -> None:
        if self._master_key is None:
            return
        presented = _presented_key(request)
        if presented is None:
            raise AuthenticationFailed(
                "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
                code="missing_api_key",
            )
        if not hmac.compare_digest(presented.encode(), self._master_key):
            raise AuthenticationFailed("invalid API key")


def _presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None
