"""The guarded fetch of client-named URLs (issue #13, item 1): no byte reaches an internal
address however it is spelled or redirected to, and every refusal says only what it must."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp.abc import ResolveResult

from tests.workers.media_servers import (
    ALLOWED_HOST,
    ALLOWED_NETWORK,
    PNG,
    Canary,
    canary,
    media_server,
)
from workers.fetch_guard import Fetched, FetchRefused, GuardedFetcher, GuardedResolver
from workers.net_guard import AddressPolicy

TIMEOUT_S = 10.0
OPEN = AddressPolicy.of([], [ALLOWED_NETWORK])


@pytest.fixture
async def trap() -> AsyncIterator[Canary]:
    async with canary() as server:
        yield server
        assert server.untouched, "a refused URL reached the canary"


@pytest.fixture
async def guarded() -> AsyncIterator[GuardedFetcher]:
    fetcher = GuardedFetcher(OPEN)
    yield fetcher
    await fetcher.close()


async def get(
    fetcher: GuardedFetcher,
    url: str,
    *,
    max_bytes: int = 1000,
    timeout_s: float = TIMEOUT_S,
    accepts: Callable[[str], bool] | None = None,
) -> Fetched:
    async with asyncio.timeout(TIMEOUT_S * 2):
        return await fetcher.get(url, max_bytes=max_bytes, timeout_s=timeout_s, accepts=accepts)


async def refusal(fetcher: GuardedFetcher, url: str, **kwargs: Any) -> str:
    with pytest.raises(FetchRefused) as caught:
        await get(fetcher, url, **kwargs)
    return str(caught.value)


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:{port}/latest/meta-data/",
    "https://127.0.0.1:{port}/",
    "http://user:pass@127.0.0.1:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://127.1:{port}/",
    "http://2130706433:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0x7f000001:{port}/",  # not numeric to aiohttp: the system resolver reads it
    "http://0x7f.0.0.1:{port}/",
    "http://localhost:{port}/metrics",
    "http://LocalHost:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://0:{port}/",
    "http://[::]:{port}/",
]


@pytest.mark.parametrize("template", LOOPBACK_SPELLINGS)
async def test_every_spelling_of_this_host_is_refused_before_connecting(
    trap: Canary, guarded: GuardedFetcher, template: str
) -> None:
    assert await refusal(guarded, template.format(port=trap.port)) == "address not allowed"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.0.1:8080/",
        "http://172.16.5.4/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://[fe80::1%25lo]/",
        "http://[2002:a9fe:a9fe::]/",
    ],
)
async def test_metadata_private_and_other_internal_addresses_are_refused(
    guarded: GuardedFetcher, url: str
) -> None:
    assert await refusal(guarded, url) == "address not allowed"


async def test_a_refused_address_reads_the_same_whether_or_not_something_listens(
    trap: Canary, guarded: GuardedFetcher
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    listening = await refusal(guarded, f"http://127.0.0.1:{trap.port}/")
    closed = await refusal(guarded, f"http://127.0.0.1:{closed_port}/")
    assert listening == closed == "address not allowed"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https URLs are fetched"),
        ("ftp://example.com/cat.png", "only http and https URLs are fetched"),
        ("gopher://127.0.0.1:70/", "only http and https URLs are fetched"),
        ("http:///cat.png", "not a valid URL"),
    ],
)
async def test_only_http_and_https_urls_are_fetched(
    guarded: GuardedFetcher, url: str, reason: str
) -> None:
    assert await refusal(guarded, url) == reason


async def test_an_allowed_network_is_fetched(guarded: GuardedFetcher) -> None:
    async with media_server() as server:
        fetched = await get(guarded, f"{server.base_url}/cat.png")
    assert fetched == Fetched("image/png", PNG, f"{server.base_url}/cat.png")


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::1]:{port}/",
        "http://0x7f000001:{port}/",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
async def test_a_redirect_from_an_allowed_host_to_an_internal_one_is_refused(
    trap: Canary, guarded: GuardedFetcher, target: str
) -> None:
    async with media_server() as server:
        location = target.format(port=trap.port)
        url = f"{server.base_url}/redirect?to={location}"
        assert await refusal(guarded, url) == "address not allowed"
    assert server.hits["/redirect"] == 1


async def test_a_redirect_to_another_scheme_is_refused(guarded: GuardedFetcher) -> None:
    async with media_server() as server:
        url = f"{server.base_url}/redirect?to=file:///etc/passwd"
        assert await refusal(guarded, url) == "only http and https URLs are fetched"


async def test_at_most_three_redirects_are_followed(guarded: GuardedFetcher) -> None:
    async with media_server() as server:
        assert (await get(guarded, f"{server.base_url}/hops/3")).data == PNG
        assert await refusal(guarded, f"{server.base_url}/hops/4") == (
            "too many redirects (limit 3)"
        )
    assert server.hits["/hops/0"] == 1  # the fourth redirect was not followed


async def test_a_slow_url_times_out_at_the_cap(guarded: GuardedFetcher) -> None:
    async with media_server() as server:
        url = f"{server.base_url}/slow.png"
        assert await refusal(guarded, url, timeout_s=0.2) == "timed out after 0.2 s"


@pytest.mark.parametrize("path", ["/big.png", "/chunked.png"])
async def test_a_body_over_the_cap_is_refused(guarded: GuardedFetcher, path: str) -> None:
    async with media_server(max_bytes=1000) as server:
        url = server.base_url + path
        assert await refusal(guarded, url, max_bytes=1000) == "too large (limit 1000 bytes)"


async def test_a_type_the_caller_does_not_accept_is_refused_unread(
    guarded: GuardedFetcher,
) -> None:
    async with media_server() as server:
        url = f"{server.base_url}/page.html"
        reason = await refusal(guarded, url, accepts=lambda kind: kind.startswith("image/"))
    assert reason == "unsupported content type text/html"


async def test_compressed_bodies_are_refused(guarded: GuardedFetcher) -> None:
    async with media_server() as server:
        reason = await refusal(guarded, f"{server.base_url}/gzip.png")
    assert reason == "unsupported content encoding gzip"


async def test_a_proxy_in_the_environment_is_not_used(
    trap: Canary, guarded: GuardedFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{trap.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with media_server() as server:
        assert (await get(guarded, f"{server.base_url}/cat.png")).data == PNG


async def test_the_resolver_returns_only_allowed_addresses() -> None:
    resolver = GuardedResolver(AddressPolicy.of([], ["127.0.0.1/32"]))
    try:
        found = await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
    finally:
        await resolver.close()
    assert found and {result["host"] for result in found} == {"127.0.0.1"}


async def test_a_name_answering_internal_and_allowed_addresses_connects_only_to_the_allowed(
    trap: Canary, guarded: GuardedFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to an address the resolver checked: the canary at 127.0.0.1 and
    the allowed server at 127.0.0.2 share a port, and the name answers the canary first."""
    system_resolve = aiohttp.ThreadedResolver.resolve

    async def answer(
        self: aiohttp.ThreadedResolver, host: str, port: int = 0, family: int = 0
    ) -> list[ResolveResult]:
        if host != "mixed.test":
            return await system_resolve(self, host, port, family)  # type: ignore[arg-type]
        return [_result(host, address, port) for address in ("127.0.0.1", ALLOWED_HOST)]

    monkeypatch.setattr(aiohttp.ThreadedResolver, "resolve", answer)
    async with media_server(port=trap.port) as server:
        fetched = await get(guarded, f"http://mixed.test:{trap.port}/cat.png")
        assert fetched.data == PNG and server.hits["/cat.png"] == 1
        only_internal = GuardedFetcher(AddressPolicy())
        try:
            url = f"http://mixed.test:{trap.port}/cat.png"
            assert await refusal(only_internal, url) == "address not allowed"
        finally:
            await only_internal.close()
    assert server.hits["/cat.png"] == 1


def _result(host: str, address: str, port: int) -> ResolveResult:
    return ResolveResult(
        hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
    )


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


async def test_https_verifies_the_name_and_sends_it_as_sni(authority: trustme.CA) -> None:
    """The resolver hands aiohttp an address; TLS still checks the certificate against the
    URL's host name and sends that name in SNI."""
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    authority.configure_trust(client_tls)
    async with media_server("127.0.0.1", tls=server_tls) as server:
        port = server.base_url.rsplit(":", 1)[1]
        allowed = GuardedFetcher(AddressPolicy.of(["localhost"], []), ssl_context=client_tls)
        refused = GuardedFetcher(AddressPolicy(), ssl_context=client_tls)
        try:
            fetched = await get(allowed, f"https://localhost:{port}/cat.png")
            assert await refusal(refused, f"https://localhost:{port}/cat.png") == (
                "address not allowed"
            )
            # A certificate for another name fails even at an allowed address.
            by_address = GuardedFetcher(
                AddressPolicy.of([], ["127.0.0.1/32"]), ssl_context=client_tls
            )
            try:
                mismatch = await refusal(by_address, f"https://127.0.0.1:{port}/cat.png")
            finally:
                await by_address.close()
        finally:
            await allowed.close()
            await refused.close()
    assert fetched.data == PNG
    assert server.sni[0] == "localhost" and server.hits["/cat.png"] == 1
    assert mismatch == "could not connect"
