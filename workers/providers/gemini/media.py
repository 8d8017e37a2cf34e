"""Images and other media for Gemini `inlineData` parts.

Gemini reads media inline (base64) or from its own Files API / Cloud Storage URIs; it does not
fetch arbitrary web URLs. So `data:` URIs are unpacked and http(s) URLs are downloaded through
the process's shared HTTP session (workers/providers/media.py), then inlined.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from workers.errors import InvalidRequest
from workers.http import HttpClient
from workers.providers.gemini.errors import PROVIDER
from workers.providers.media import FetchError, fetch_media

# Gemini caps a whole request at 20 MB; a single image cannot be larger than that.
MAX_MEDIA_BYTES = 20 * 1024 * 1024
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
    try:
        fetched = await fetch_media(http, url, max_bytes=MAX_MEDIA_BYTES, timeout_s=timeout_s)
    except FetchError as exc:
        raise _bad(str(exc), param, model) from exc
    mime = fetched.media_type or "application/octet-stream"
    return inline_data(mime, base64.b64encode(fetched.data).decode())


def _bad(message: str, param: str, model: str) -> InvalidRequest:
    return InvalidRequest(
        message, param=param, code="invalid_image_url", provider=PROVIDER, model=model
    )
