"""`/ui/api/call/<path>`: the console's pages call the public API through here.

The browser has a session cookie, not the key; this handler checks the session and its CSRF
token, then makes the same call over HTTP with the session's key (loopback.py) and hands the
answer back as it came: status, body, the API's own error messages, and the response
headers a page shows (request id, deployment, attempts, overhead, cost). Streams (the
playground's chat) are passed through chunk by chunk.

Only the paths the pages use are reachable, so a stolen session cannot reach endpoints the
console never needed.
"""

from __future__ import annotations

import re

import msgspec
from aiohttp import web

from broker.console import sessions
from broker.console.signin import check_origin, csrf_refused
from broker.console.state import CONSOLE
from workers.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied

ALLOWED: dict[str, re.Pattern[str]] = {
    "GET": re.compile(
        r"/key/(info|list)|/(user|team|organization|customer)/(info|list)|/budget/list"
        r"|/spend/logs|/global/spend/report|/audit/logs|/v1/models|/model/info|/metrics"
        r"|/health/readiness"
    ),
    "POST": re.compile(
        r"/key/(generate|update|delete|regenerate|block|unblock)|/(user|team)/(new|update|delete)"
        r"|/team/member_(add|delete|update)|/v1/chat/completions"
    ),
}
# Headers of the API's answer the console passes on (the rest are hop-by-hop or irrelevant).
PASSED_HEADERS = frozenset({"content-type", "retry-after", "x-request-id"})
PASSED_PREFIX = "x-switchboard-"
MAX_QUERY_CHARS = 2048
STREAM = "text/event-stream"
# Answers up to this size are read whole; longer ones are passed on as they arrive.
BUFFERED_BYTES = 1024 * 1024
# The API's 401s that refuse a role, not a key: `/metrics` compares the bearer with the
# master and metrics keys without asking who else it is. A session already proved its key,
# so for the console these are a 403 like every other refused management call (issue #21).
ROLE_REFUSED_401_CODES = frozenset({"metrics_key_required"})


class _ErrorBody(msgspec.Struct):
    code: str | None = None
    message: str = ""


class _ErrorAnswer(msgspec.Struct):
    error: _ErrorBody


decode_error = msgspec.json.Decoder(_ErrorAnswer).decode


async def call(request: web.Request) -> web.StreamResponse:
    state = request.app[CONSOLE]
    path = "/" + request.match_info["path"]
    allowed = ALLOWED.get(request.method)
    if allowed is None or not allowed.fullmatch(path):
        raise NotFound(
            f"the console does not call `{request.method} {path[:100]}`", code="not_found"
        )
    loaded = await state.store.load(request.cookies.get(sessions.COOKIE))
    if loaded is None:
        raise AuthenticationFailed("sign in to the console first", code="console_signed_out")
    session, key = loaded
    check_origin(request)
    # Every call, reads too: a page of another site can then never make one.
    if not sessions.csrf_matches(request, session.csrf):
        raise csrf_refused()
    query = request.query_string
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest("the query string is too long", code="query_too_long")
    body = await request.read() if request.method == "POST" else None
    path_qs = path + ("?" + query if query else "")
    async with state.loopback.call(
        request, key, request.method, path_qs, body=body, content_type=request.content_type
    ) as answer:
        headers = {
            name: value
            for name, value in answer.headers.items()
            if name.lower() in PASSED_HEADERS or name.lower().startswith(PASSED_PREFIX)
        }
        headers["Cache-Control"] = "no-store"
        length = answer.content_length
        if answer.content_type != STREAM and length is not None and length <= BUFFERED_BYTES:
            body = await answer.read()
            if answer.status == 401:
                _raise_if_role_refused(body)
            return web.Response(status=answer.status, body=body, headers=headers)
        # Streams, and answers too big to hold (a year's spend report by key), pass through.
        response = web.StreamResponse(status=answer.status, headers=headers)
        await response.prepare(request)
        async for chunk in answer.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def _raise_if_role_refused(body: bytes) -> None:
    """A signed-in key the API refused for its role, not its identity: the same refusal as
    a 403. Other 401s (a key blocked or deleted since sign-in) pass on as they are."""
    try:
        error = decode_error(body).error
    except msgspec.DecodeError:
        return
    if error.code in ROLE_REFUSED_401_CODES:
        raise PermissionDenied(error.message, code=error.code)
