"""The front door's HTTP/1.1 server: aiohttp's protocol with what a public listener needs
(issue #13, items 3, 5 and 9).

- A request's headers must arrive within `header_timeout_s` of the connection opening or of
  the request's first byte; else the connection is closed (slow-header clients).
- A request's body must arrive within `body_timeout_s` of its headers; else the handler's
  read fails with a 408 `body_timeout` and the connection is closed. The response is never
  timed: a long stream is not cut.
- An idle keep-alive connection is closed after `keepalive_timeout_s` (aiohttp's own timer).
- At most `max_connections` connections are open; one more is closed on arrival.
- A request aiohttp cannot parse is answered with a JSON 400 naming what was wrong (never
  the raw line, which may hold a key) and logged as one WARNING line without any header
  value, at most once per `LOG_EVERY_S`, with a count of the lines held back. aiohttp itself
  logs the whole line, key included, at ERROR with a traceback.

aiohttp has no public hook for any of these: the protocol class is chosen by `web.Server`,
which `web.AppRunner` makes, so `GuardedRunner` makes a `GuardedServer` making
`GuardedProtocol`s. `GuardedProtocol` reads two private fields of aiohttp's RequestHandler
(`_request_count`, `_messages`) to learn when a request's headers are in; the tests in
tests/broker/test_http_server.py fail if a new aiohttp moves them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import (
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

from broker.errors import error_response_at
from workers.errors import (
    GatewayTimeout,
    InternalError,
    InvalidRequest,
    RequestTimeout,
    SwitchboardError,
)
from workers.settings.switchboard import HttpLimits

log = logging.getLogger("switchboard.http")

# A client can make these lines at will: at most one per this many seconds and kind.
LOG_EVERY_S = 10.0
# llhttp's message quotes the offending line: `<reason>:\n\n  b'<name>: <value>'\n  ^`.
_LLHTTP_HEADER_NAME = re.compile(r"\n\n  b?[\"']([!#$%&*+.^_`|~0-9A-Za-z-]{1,64}):")


class BodyTimeout(RequestTimeout, TimeoutError):
    """The request body did not arrive in time. A TimeoutError too, so that aiohttp's
    lingering read of a body nobody read stops on it quietly instead of logging it."""

    default_code = "body_timeout"


class MalformedRequest(InvalidRequest):
    default_code = "malformed_request"


class Throttled:
    """A log line a client can trigger at will: at most one per `every_s`, each saying how
    many were held back since the last one."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every_s = every_s
        self.clock = clock
        self.held_back = 0
        self._next_at = float("-inf")

    def warning(self, message: str, *args: object) -> None:
        now = self.clock()
        if now < self._next_at:
            self.held_back += 1
            return
        self._next_at = now + self.every_s
        held_back, self.held_back = self.held_back, 0
        suffix = f" ({held_back} more in the last {self.every_s:.0f}s)" if held_back else ""
        self.logger.warning(message + "%s", *args, suffix)


class ConnectionGuard:
    """The limits of one listener and its count of open connections."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.open_connections = 0
        self.malformed = Throttled(log)
        self.refused = Throttled(log)
        self.slow_headers = Throttled(log)
        self.slow_bodies = Throttled(log)


def describe_malformed(exc: HttpProcessingError) -> tuple[str, str | None]:
    """What was wrong with an unparseable request, and the header at fault when known:
    words aiohttp and llhttp chose, never the bytes the client sent."""
    if isinstance(exc, LineTooLong):
        return "the request line or a header is too long", None
    if isinstance(exc, InvalidURLError):
        return "the request target is not a valid URL", None
    if isinstance(exc, BadStatusLine):
        return "the request line is not `METHOD /path HTTP/1.1`", None
    if isinstance(exc, InvalidHeader):
        return "a header holds a character headers may not hold", None
    reason = exc.message.split(":\n", 1)[0].strip() or "bad request"
    found = _LLHTTP_HEADER_NAME.search(exc.message)
    if found is None:
        return reason, None
    return f"{reason} in the `{found[1]}` header", found[1]


class GuardedProtocol(web.RequestHandler):
    __slots__ = ("_guard", "_header_timer", "_body_timer", "_is_counted")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager.guard
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._is_counted = False

    # ------------------------------------------------------------------ connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard.open_connections >= guard.limits.max_connections:
            transport.close()
            guard.refused.warning(
                "refused a connection: %d open, the limit (switchboard_settings.http."
                "max_connections)",
                guard.open_connections,
            )
            return
        guard.open_connections += 1
        self._is_counted = True
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._is_counted:
            return  # refused: aiohttp never knew of it
        self._is_counted = False
        self._guard.open_connections -= 1
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._is_counted:
            return
        if self._header_timer is None and self._body_timer is None:
            self._arm_header_timer()  # the first byte of a new request
        parsed_before = self._request_count
        super().data_received(data)
        if self._request_count != parsed_before:
            self._cancel_header_timer()
            if self._messages:
                self._watch_body(self._messages[-1][1])

    # ------------------------------------------------------------------ timers

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(
            self._guard.limits.header_timeout_s, self._headers_too_slow
        )

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        self._guard.slow_headers.warning(
            "closed a connection that sent no complete request headers in %.0fs "
            "(switchboard_settings.http.header_timeout_s)",
            self._guard.limits.header_timeout_s,
        )
        self.force_close()

    def _watch_body(self, payload: StreamReader) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        timeout_s = self._guard.limits.body_timeout_s
        self._body_timer = self._loop.call_later(timeout_s, self._body_too_slow, payload)
        payload.on_eof(self._cancel_body_timer)  # at once when there is no body

    def _body_too_slow(self, payload: StreamReader) -> None:
        self._body_timer = None
        timeout_s = self._guard.limits.body_timeout_s
        self._guard.slow_bodies.warning(
            "a request body did not arrive in %.0fs (switchboard_settings.http.body_timeout_s)",
            timeout_s,
        )
        # The handler's read fails with a 408; the unread rest means the connection closes.
        payload.set_exception(BodyTimeout(f"the request body did not arrive within {timeout_s:g}s"))

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()

    # ------------------------------------------------------------------ errors

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # aiohttp drains a body its handler left unread (an early 401 or 415); a body that
        # fails to decode there (gzip that is not gzip) is the client's fault, not ours.
        exc = kw.get("exc_info")
        if isinstance(exc, web.RequestPayloadError):
            self._guard.malformed.warning("unreadable request body: %s", type(exc).__name__)
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to what never reached a handler (a request it could not parse)
        or escaped the error middleware: the API's JSON shape, not text/plain."""
        if isinstance(exc, HttpProcessingError):
            description, header = describe_malformed(exc)
            self._guard.malformed.warning(
                "malformed HTTP request from %s: %s", request.remote, description
            )
            error: SwitchboardError = MalformedRequest(
                f"malformed HTTP request: {description}", param=header
            )
        elif status == 504:
            error = GatewayTimeout("the request timed out in the gateway")
        else:
            log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
            error = InternalError("internal error in the gateway")
        if request.writer.output_size > 0:
            # Part of a response is out: no status can follow (aiohttp's own rule).
            raise ConnectionError("the response had started; cannot send an error")
        response = error_response_at(request.path, error)
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's Server making GuardedProtocols for one listener's ConnectionGuard."""

    def __init__(self, plain: web.Server, guard: ConnectionGuard) -> None:
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
        self.guard = guard

    def __call__(self) -> GuardedProtocol:
        return GuardedProtocol(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """`web.AppRunner` whose listeners hold clients to `limits`."""

    def __init__(self, app: web.Application, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout_s, **kwargs)
        self.guard = ConnectionGuard(limits)

    async def _make_server(self) -> web.Server:
        return GuardedServer(await super()._make_server(), self.guard)
