"""Media a caller names by http(s) URL, fetched for providers that take only inline bytes.

Gemini and Bedrock Converse do not fetch arbitrary web URLs (Anthropic and the OpenAI family
do, so their adapters pass URLs through). One GET through the process's shared session, a
size cap enforced while reading, the media type from Content-Type or the URL's extension.
"""

from __future__ import annotations

import mimetypes
from typing import NamedTuple
from urllib.parse import urlsplit

import aiohttp

from workers.http import HttpClient

FETCH_TIMEOUT_S = 30.0
_UNTYPED = ("", "application/octet-stream", "binary/octet-stream")


class Fetched(NamedTuple):
    media_type: str  # lowercased, without parameters; "" when neither server nor URL says
    data: bytes


class FetchError(Exception):
    """Why a URL could not be fetched, worded for the caller's error message."""


async def fetch_media(
    http: HttpClient, url: str, *, max_bytes: int, timeout_s: float | None
) -> Fetched:
    """GET `url` (http or https only), refusing bodies over `max_bytes`."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise FetchError(f"expected an http(s) or data: URL; got {url[:80]!r}")
    timeout = aiohttp.ClientTimeout(total=timeout_s or FETCH_TIMEOUT_S)
    try:
        async with http.session.get(url, timeout=timeout) as response:
            if response.status >= 400:
                raise FetchError(f"could not fetch {url}: HTTP {response.status}")
            data = await _read_capped(response, url, max_bytes)
            content_type = response.headers.get("Content-Type")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FetchError(f"could not fetch {url}: {exc or type(exc).__name__}") from exc
    return Fetched(media_type_of(content_type, url), data)


async def _read_capped(response: aiohttp.ClientResponse, url: str, max_bytes: int) -> bytes:
    too_large = f"{url} is larger than {max_bytes} bytes"
    if (response.content_length or 0) > max_bytes:
        raise FetchError(too_large)
    data = bytearray()
    async for piece in response.content.iter_any():
        data += piece
        if len(data) > max_bytes:  # stop downloading what cannot be sent anyway
            raise FetchError(too_large)
    return bytes(data)


def media_type_of(content_type: str | None, url: str) -> str:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type not in _UNTYPED:
        return media_type
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed or ""
