"""Plain (non-stream) responses shared by every provider fake."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

JSON_CONTENT_TYPE = "application/json"


def json_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A response with an already encoded JSON body."""
    all_headers = {"Content-Type": JSON_CONTENT_TYPE}
    if headers:
        all_headers.update(headers)
    return web.Response(body=body, status=status, headers=all_headers)


def format_seconds(seconds: float) -> str:
    """A delay as a header value: whole seconds without a fraction ("2", not "2.0")."""
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


def go_duration(seconds: float) -> str:
    """A delay as OpenAI's x-ratelimit-reset-* headers write it ("784ms", "2s", "6m0s")."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:g}s" if minutes else f"{rest:g}s"
