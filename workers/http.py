"""The one upstream HTTP client session per process (per event loop), and the HTTP helpers
adapters share: timeouts, Retry-After parsing, mapping transport failures to our errors, and
reading upstream bodies under the reply cap (the one place adapters read them).

URLs a client names are never fetched through the upstream session: `HttpClient.guarded`
gives the separate, policed session of workers/fetch_guard.py."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp

from workers import memory
from workers.errors import (
    APIConnectionError,
    ProviderError,
    RequestTimeout,
    SwitchboardError,
    UpstreamResponseTooLarge,
    error_for_status,
)
from workers.fetch_guard import GuardedFetcher
from workers.hooks.trace_context import send_traceparent
from workers.net_guard import AddressPolicy
from workers.upstream_text import LOG_TEXT_CHARS, excerpt

log = logging.getLogger("switchboard.upstream")

# A gateway holds thousands of idle keep-alive connections to a few hosts; aiohttp's default
# of 100 connections total would queue requests inside the client.
DEFAULT_CONNECTION_LIMIT = 4096
DEFAULT_KEEPALIVE_S = 30.0
DEFAULT_TIMEOUT_S = 600.0
# The most bytes of one upstream reply a worker reads (switchboard_settings.max_reply_bytes):
# the largest embeddings reply the official SDKs ask for (2,048 inputs x 3,072 dimensions,
# base64) is about 34 MB, a long chat completion under 1 MB.
DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024


class HttpClient:
    """Owns one aiohttp.ClientSession: open it inside a running loop, close it on shutdown."""

    def __init__(
        self,
        *,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self._connection_limit = connection_limit
        self._keepalive_s = keepalive_s
        self.max_reply_bytes = max_reply_bytes
        # Whether upstream requests carry the current provider span's `traceparent` (issue
        # #19): a traced worker turns it on before its first request (read when the session
        # opens). Off, the session has no middleware to call (issue #22).
        self.sends_traceparent = False
        self._session: aiohttp.ClientSession | None = None
        self._guarded: dict[AddressPolicy, GuardedFetcher] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._open()
        return self._session

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._connection_limit,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_s,
            ttl_dns_cache=300,
            enable_cleanup_closed=False,
        )
        return aiohttp.ClientSession(
            connector=connector,
            # Timeouts are per request (see `timeout_for`); none at the session level.
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
            # Upstream JSON is decoded by msgspec from bytes; skip aiohttp's cookie handling.
            cookie_jar=aiohttp.DummyCookieJar(),
            # The request's trace context goes upstream as `traceparent` (issue #19).
            middlewares=(send_traceparent,) if self.sends_traceparent else (),
        )

    def guarded(self, policy: AddressPolicy) -> GuardedFetcher:
        """The fetcher for client-named URLs under `policy` (in practice one per process)."""
        fetcher = self._guarded.get(policy)
        if fetcher is None:
            fetcher = self._guarded[policy] = GuardedFetcher(policy)
        return fetcher

    async def read_body(self, response: aiohttp.ClientResponse, provider: str, model: str) -> bytes:
        """The whole body (decompressed), refused once it passes `max_reply_bytes`: counted
        while reading, so a huge reply is never buffered first (issue #13: a 163 MB reply
        stayed in a worker's memory)."""
        cap = self.max_reply_bytes
        if (response.content_length or 0) > cap:
            raise _too_large(response, provider, model, cap)
        pieces: list[bytes] = []
        size = 0
        try:
            async for piece in response.content.iter_any():
                size += len(piece)
                if size > cap:
                    raise _too_large(response, provider, model, cap)
                pieces.append(piece)
            return b"".join(pieces)
        finally:
            memory.note_bytes(size)  # a large body asks for a memory release after the job

    async def iter_body(
        self, response: aiohttp.ClientResponse, provider: str, model: str
    ) -> AsyncIterator[bytes]:
        """What each network read delivered, without buffering the body; a stream whose
        bytes in all pass `max_reply_bytes` fails there (the reply ends with an error)."""
        cap = self.max_reply_bytes
        size = 0
        async for piece in response.content.iter_any():
            size += len(piece)
            if size > cap:
                raise _too_large(response, provider, model, cap)
            yield piece

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        guarded, self._guarded = self._guarded, {}
        for fetcher in guarded.values():
            await fetcher.close()

    async def __aenter__(self) -> HttpClient:
        _ = self.session
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


_clients_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HttpClient] = (
    weakref.WeakKeyDictionary()
)


def shared_client() -> HttpClient:
    """The HttpClient of the running event loop (the in-process SDK's shared session).

    It closes itself when its loop shuts down (issue #16: `asyncio.run(main())` with an
    SDK call in it printed `Unclosed client session` at exit); `aclose()` closes it sooner."""
    loop = asyncio.get_running_loop()
    client = _clients_by_loop.get(loop)
    if client is None:
        client = HttpClient()
        _clients_by_loop[loop] = client
        _close_with_loop(loop, client)
    return client


# The first step of each closer (below) until it has run: a task of its own, held here.
_starting: set[asyncio.Task[None]] = set()
_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]] = (
    weakref.WeakKeyDictionary()
)


def _close_with_loop(loop: asyncio.AbstractEventLoop, client: HttpClient) -> None:
    """An async generator paused at its `yield` holding `client`: `asyncio.run` (and any
    runner that calls `loop.shutdown_asyncgens()`, as it does before closing the loop) closes
    every such generator, which closes the client inside the loop, where that must happen."""

    async def closer() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.close()

    async def start(generator: AsyncIterator[None]) -> None:
        await anext(generator)

    generator = closer()
    # Held for as long as the loop holds the client: collected, it would close at once.
    _closers[loop] = generator
    task = loop.create_task(start(generator))
    _starting.add(task)
    task.add_done_callback(_starting.discard)


def timeout_for(timeout_s: float | None, *, stream: bool) -> aiohttp.ClientTimeout:
    """A whole-request deadline for plain calls; for streams the same figure bounds connecting
    and every gap between reads, so a long but live stream is never cut."""
    seconds = timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S
    if stream:
        return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
    return aiohttp.ClientTimeout(total=seconds)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


@contextlib.contextmanager
def transport_errors(provider: str, model: str) -> Iterator[None]:
    """Turn aiohttp and timeout failures into our error tree; our own errors pass through."""
    try:
        yield
    except SwitchboardError:
        raise
    except TimeoutError as exc:
        raise RequestTimeout(
            f"{provider} did not answer in time", provider=provider, model=model
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise ProviderError(
            f"{provider} closed the response early: {exc}", provider=provider, model=model
        ) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientOSError) as exc:
        raise APIConnectionError(
            f"could not reach {provider}: {exc}", provider=provider, model=model
        ) from exc
    except aiohttp.ClientError as exc:
        raise ProviderError(
            f"{provider} request failed: {exc}", provider=provider, model=model
        ) from exc


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    message: str,
    *,
    code: str | None,
    param: str | None,
    provider: str,
    model: str,
) -> SwitchboardError:
    return error_for_status(
        status,
        message,
        code=code,
        param=param,
        provider=provider,
        model=model,
        retry_after_s=parse_retry_after(headers),
    )


def _too_large(
    response: aiohttp.ClientResponse, provider: str, model: str, cap: int
) -> UpstreamResponseTooLarge:
    # Dropping the connection tells the upstream to stop sending the rest.
    response.close()
    return reply_too_large(provider, model, cap)


def reply_too_large(provider: str | None, model: str | None, cap: int) -> UpstreamResponseTooLarge:
    """The error for a reply past the cap (also raised where the reply is written)."""
    source = provider or "the provider"
    return UpstreamResponseTooLarge(
        f"{source} sent a reply larger than {format_bytes(cap)}, the most the gateway holds "
        "for one reply (switchboard_settings.max_reply_bytes); ask for less (fewer inputs, "
        "base64 embeddings, a lower max_tokens) or raise the limit",
        provider=provider,
        model=model,
    )


def format_bytes(size: int) -> str:
    """`67108864 bytes (64 MiB)`: exact, and readable."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size} bytes ({size / scale:g} {unit})"
    return f"{size} bytes"


def describe_body(raw: bytes) -> str:
    """What an error message may say of an upstream body the gateway could not read: its
    size. The body may hold anything (a key echoed back, an internal host name, a proxy's
    page), so it goes only to the log, masked and cut short (issue #13, item 7)."""
    log_unreadable(raw)
    return f"{len(raw)} bytes, in the worker's log"


def log_unreadable(raw: bytes) -> None:
    """Log an upstream body the gateway could not read, masked and cut short."""
    text = raw[: LOG_TEXT_CHARS * 4].decode("utf-8", errors="replace")
    log.warning(
        "an upstream body the gateway could not read (%d bytes): %s",
        len(raw),
        excerpt(text, LOG_TEXT_CHARS),
    )


JSONObject = dict[str, Any]


async def close_shared_client() -> None:
    """Close the running loop's shared client (SDK users: call before their loop ends)."""
    client = _clients_by_loop.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.close()
