"""Images and other media for Gemini `inlineData` parts.

Gemini reads media inline (base64) or from its own Files API / Cloud Storage URIs; it does not
fetch arbitrary web URLs. So `data:` URIs are unpacked and http(s) URLs are downloaded through
the process's shared HTTP session, then inlined.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from workers.errors import InvalidRequest, SwitchboardError
from workers.http import HttpClient
from workers.providers.gemini.errors import PROVIDER

# Gemini caps a whole request at 20 MB; a single image cannot be larger than that.
MAX_MEDIA_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_S = 30.0
_DATA_URI = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.S)


def inline_data(mime_type: str, data: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime_type, "data": data}}


def from_data_uri(uri: str, *, param: str, model: str) -> dict[str, Any]:
    """`data:image/png;base64,...` -> an inlineData part (the base64 is passed through)."""
    match = _DATA_URI.match(uri)
    if match is None or ";base64" not in match.group("params"):
        raise _bad(f"`{param}` is not a base64 data URI", param, model)
    mime = match.group("mime") or "application/octet-stream"
    return inline_data(mime, match.group("data"))


async def fetch_inline(
    http: HttpClient, url: str, *, param: str, model: str, timeout_s: float | None
) -> dict[str, Any]:
    """Download an http(s) URL the caller gave and return it as an inlineData part."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise _bad(f"`{param}` must be an http(s) or data: URL; got {url[:80]!r}", param, model)
    timeout = aiohttp.ClientTimeout(total=timeout_s or FETCH_TIMEOUT_S)
    try:
        async with http.session.get(url, timeout=timeout) as response:
            if response.status >= 400:
                raise _bad(f"could not fetch {url}: HTTP {response.status}", param, model)
            body = await _read_capped(response, url, param, model)
            mime = _mime_type(response.headers.get("Content-Type"), url)
    except SwitchboardError:
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _bad(f"could not fetch {url}: {exc or type(exc).__name__}", param, model) from exc
    return inline_data(mime, base64.b64encode(body).decode())


async def _read_capped(response: aiohttp.ClientResponse, url: str, param: str, model: str) -> bytes:
    if (response.content_length or 0) > MAX_MEDIA_BYTES:
        raise _bad(f"{url} is larger than {MAX_MEDIA_BYTES} bytes", param, model)
    pieces: list[bytes] = []
    size = 0
    async for data in response.content.iter_any():
        size += len(data)
        if size > MAX_MEDIA_BYTES:
            raise _bad(f"{url} is larger than {MAX_MEDIA_BYTES} bytes", param, model)
        pieces.append(data)
    return b"".join(pieces)


def _mime_type(content_type: str | None, url: str) -> str:
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime and mime != "application/octet-stream":
        return mime
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed or "application/octet-stream"


def _bad(message: str, param: str, model: str) -> InvalidRequest:
    return InvalidRequest(
        message, param=param, code="invalid_image_url", provider=PROVIDER, model=model
    )
