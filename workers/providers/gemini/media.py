"""Images and other media for Gemini `inlineData` parts.

Gemini reads media inline (base64) or from its own Files API / Cloud Storage URIs; it does not
fetch arbitrary web URLs. So `data:` URIs are unpacked and http(s) URLs are downloaded through
the guarded media fetch (workers/providers/media.py: public addresses only, once per request),
then inlined if Gemini reads their type.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from workers.errors import InvalidRequest
from workers.fetch_guard import FetchRefused
from workers.http import HttpClient
from workers.providers.gemini.errors import PROVIDER
from workers.providers.media import MediaFetches, unfetchable, usable

# Gemini caps a whole request at 20 MB; a single image cannot be larger than that.
MAX_MEDIA_BYTES = 20 * 1024 * 1024
# What Gemini documents for inline data (ai.google.dev/gemini-api/docs: image, document,
# audio and video understanding), plus the registered names servers send for the same
# formats (audio/mpeg, video/quicktime). Not GIF, which Gemini refuses; not text, which an
# image URL has no business returning.
INLINE_TYPES = frozenset(
    """
    image/png image/jpeg image/webp image/heic image/heif
    application/pdf
    audio/wav audio/x-wav audio/mp3 audio/mpeg audio/aiff audio/aac audio/ogg audio/flac
    video/mp4 video/mpeg video/mov video/quicktime video/avi video/x-flv video/mpg video/webm
    video/wmv video/3gpp
    """.split()
)
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
    http: HttpClient,
    media: MediaFetches,
    url: str,
    *,
    param: str,
    model: str,
    timeout_s: float | None,
) -> dict[str, Any]:
    """Download an http(s) URL the caller gave and return it as an inlineData part."""
    outcome = await media.fetch(http, url, timeout_s)
    try:
        found = usable(outcome, accept=INLINE_TYPES, max_bytes=MAX_MEDIA_BYTES)
    except FetchRefused as exc:
        raise unfetchable(param, exc, provider=PROVIDER, model=model) from None
    return inline_data(found.media_type, base64.b64encode(found.data).decode())


def _bad(message: str, param: str, model: str) -> InvalidRequest:
    return InvalidRequest(
        message, param=param, code="invalid_image_url", provider=PROVIDER, model=model
    )
