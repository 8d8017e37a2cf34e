"""The one way a worker fetches a URL a client named.

Every URL that a request names and a worker downloads (an `image_url` that Gemini or Bedrock
needs as bytes today; documents, audio, files and webhook destinations as they come) goes
through `GuardedFetcher.get` (`HttpClient.guarded(policy).get(...)`), never through the
upstream session, whose destinations only the operator chooses. A new kind of request to a
client-named URL (a webhook's POST) is added here beside `get`, going through `_send` and
`_follow`'s hop-by-hop checks: the guarded session alone does not check IP literals.

- http and https only.
- Every address the host resolves to is judged by `workers.net_guard` inside the connector's
  resolver, and only the addresses that passed are returned, so aiohttp connects to exactly
  the address that was checked: there is no second lookup for DNS rebinding to answer
  differently. TLS still verifies the certificate against the host name (SNI included).
- IP literals never reach a resolver (aiohttp connects to them as written), so `check_url`
  judges them first; numeric host spellings that only C's inet_aton reads (`127.1`,
  `2130706433`) are refused outright, and the rest (`0x7f000001`) resolve to what they mean.
- No proxy from the environment (it would connect on our behalf, unchecked), no cookies, no
  decompression (a small gzip body must not become a large image).
- Redirects are followed here, at most `MAX_REDIRECTS`, each hop judged like the first.
- One deadline covers every hop; the body is capped while it is read.

A failure is a `FetchRefused` whose text is a short reason fit for the client. A refused
address and a failed connection to it are indistinguishable (the connection is never
attempted), so the errors map nothing inside the network.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import NamedTuple

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from workers.net_guard import AddressPolicy, parse_address

MAX_REDIRECTS = 3
# Connections one process keeps for client-named URLs, across all hosts: they are slow,
# foreign servers, kept apart from the upstream pool.
CONNECTION_LIMIT = 256
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_SIZE = 64 * 1024

ADDRESS_NOT_ALLOWED = "address not allowed"
COULD_NOT_CONNECT = "could not connect"


class FetchRefused(Exception):
    """Why a URL was not fetched, as a short phrase for the client ("HTTP 404")."""


class TooLarge(FetchRefused):
    def __init__(self, limit: int) -> None:
        super().__init__(f"too large (limit {limit} bytes)")
        self.limit = limit


class Fetched(NamedTuple):
    content_type: str  # lowercased, without parameters; "" when the server sent none
    data: bytes
    url: str  # after redirects


class _AddressNotAllowed(Exception):
    """Raised by the resolver. Not an OSError, so aiohttp lets it through unwrapped."""


class GuardedResolver(AbstractResolver):
    """The system resolver, returning only the addresses the policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._system = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._system.resolve(host, port, family)
        allowed = [result for result in found if self._allows(host, result["host"])]
        if not allowed:
            raise _AddressNotAllowed
        return allowed

    def _allows(self, host: str, resolved: str) -> bool:
        address = parse_address(resolved)
        return address is not None and self._policy.allows(host, address)

    async def close(self) -> None:
        await self._system.close()


class GuardedFetcher:
    """One aiohttp session for client-named URLs under one address policy; opened on first
    use inside a running loop, closed by its owner (workers.http.HttpClient)."""

    def __init__(self, policy: AddressPolicy, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        # None: the system's trust store (aiohttp's default verification).
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.policy),
                # Every new connection resolves and is judged afresh.
                use_dns_cache=False,
                limit=CONNECTION_LIMIT,
                limit_per_host=0,
                keepalive_timeout=15.0,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),  # one deadline per fetch, in `get`
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def check_url(self, url: str | URL) -> URL:
        """`url` parsed, if its scheme and (for an IP literal) its address are allowed."""
        try:
            parsed = url if isinstance(url, URL) else URL(url)
            host = parsed.raw_host
        except (ValueError, TypeError):
            raise FetchRefused("not a valid URL") from None
        if parsed.scheme not in ("http", "https"):
            raise FetchRefused("only http and https URLs are fetched")
        if not host:
            raise FetchRefused("not a valid URL")
        literal = parse_address(host)
        if literal is not None:
            if not self.policy.allows(host, literal):
                raise FetchRefused(ADDRESS_NOT_ALLOWED)
        elif host.replace(".", "").isdigit():
            raise FetchRefused(ADDRESS_NOT_ALLOWED)  # `127.1`, `2130706433`: see the docstring
        return parsed

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        timeout_s: float,
        accepts: Callable[[str], bool] | None = None,
    ) -> Fetched:
        """GET `url`, following redirects; `accepts` may refuse a declared Content-Type
        before the body is read."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self._follow(url, max_bytes, accepts)
        except TimeoutError:
            raise FetchRefused(f"timed out after {round(timeout_s, 2):g} s") from None

    async def _follow(
        self, url: str, max_bytes: int, accepts: Callable[[str], bool] | None
    ) -> Fetched:
        current = self.check_url(url)
        for hop in range(MAX_REDIRECTS + 1):
            async with await self._send(current) as response:
                location = response.headers.get("Location")
                if response.status in _REDIRECT_STATUSES and location:
                    if hop == MAX_REDIRECTS:
                        raise FetchRefused(f"too many redirects (limit {MAX_REDIRECTS})")
                    current = self.check_url(_join(current, location))
                    continue
                if response.status >= 300:
                    raise FetchRefused(f"HTTP {response.status}")
                content_type = _content_type(response)
                if content_type and accepts is not None and not accepts(content_type):
                    raise FetchRefused(f"unsupported content type {content_type}")
                data = await _read_capped(response, max_bytes)
                return Fetched(content_type, data, str(current))
        raise AssertionError("unreachable: the last hop returns or raises")

    async def _send(self, url: URL) -> aiohttp.ClientResponse:
        """One GET to a URL `check_url` passed, without following redirects."""
        try:
            return await self._opened().get(
                url, allow_redirects=False, headers={"Accept-Encoding": "identity"}
            )
        except _AddressNotAllowed:
            raise FetchRefused(ADDRESS_NOT_ALLOWED) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise FetchRefused(COULD_NOT_CONNECT) from exc


def _join(base: URL, location: str) -> URL:
    try:
        return base.join(URL(location))
    except (ValueError, TypeError):
        raise FetchRefused("invalid redirect") from None


def _content_type(response: aiohttp.ClientResponse) -> str:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        raise FetchRefused(f"unsupported content encoding {encoding[:40]}")
    return response.headers.get("Content-Type", "").partition(";")[0].strip().lower()[:100]


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    if (response.content_length or 0) > max_bytes:
        raise TooLarge(max_bytes)
    data = bytearray()
    try:
        async for piece in response.content.iter_chunked(_READ_SIZE):
            data += piece
            if len(data) > max_bytes:  # stop downloading what cannot be sent anyway
                raise TooLarge(max_bytes)
    except aiohttp.ClientError as exc:
        raise FetchRefused("the connection broke while reading") from exc
    return bytes(data)
