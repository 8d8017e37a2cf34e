"""Media a caller names by http(s) URL, fetched for providers that take only inline bytes.

Gemini and Bedrock Converse do not fetch arbitrary web URLs (Anthropic and the OpenAI family
do, so their adapters pass URLs through). Their adapters get the bytes from here, which
- downloads through the guarded fetcher (workers/fetch_guard.py: only public addresses unless
  the operator allows more, redirects re-checked, size and time caps) under
  `switchboard_settings.media_fetch`;
- downloads each URL once per request: the outcome, bytes or the reason it failed, stays in
  the call's `MediaFetches`, shared by every retry and fallback of the request (they build
  the provider request again, not the download);
- checks the media type against what the calling adapter accepts and the size against its
  limit (the download is capped by the operator's limit, not the adapter's, so that a
  fallback to another provider can use the same bytes);
- words a failure as a 400 `invalid_image_url`: "<param> could not be fetched: <reason>".
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Collection, Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

import msgspec

from workers.errors import InvalidRequest
from workers.fetch_guard import Fetched, FetchRefused, TooLarge
from workers.http import HttpClient
from workers.net_guard import AddressPolicy
from workers.settings.switchboard import MediaFetch

_UNTYPED = ("", "application/octet-stream", "binary/octet-stream")
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
CODE = "invalid_image_url"


class Media(NamedTuple):
    media_type: str  # lowercased, without parameters; "" when nothing says
    data: bytes


class MediaPolicy(msgspec.Struct, frozen=True):
    """`switchboard_settings.media_fetch`, made ready once per process (or SDK Router)."""

    addresses: AddressPolicy
    max_bytes: int
    max_request_bytes: int
    timeout_s: float

    @classmethod
    def of(cls, settings: MediaFetch) -> MediaPolicy:
        return cls(
            addresses=AddressPolicy.of(settings.allow_hosts, settings.allow_networks),
            max_bytes=settings.max_bytes,
            max_request_bytes=settings.max_request_bytes,
            timeout_s=settings.timeout_s,
        )


# Public addresses only, 20 MB and 10 s a URL: the service's default and the SDK's.
DEFAULT_POLICY = MediaPolicy.of(MediaFetch())


class MediaFetches:
    """The URLs fetched for one request (`ChatCall.media`): each one's bytes or the reason
    it could not be fetched, and the bytes taken so far against the request's budget."""

    def __init__(self, policy: MediaPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self._outcomes: dict[str, Fetched | str] = {}
        # Bytes fetched, plus the whole limit of each download in progress: the request's
        # budget holds however the downloads interleave. As many run at once as the budget
        # covers at full size, so none is refused for what the others might still take.
        self._reserved = 0
        self._slots = asyncio.Semaphore(max(1, policy.max_request_bytes // policy.max_bytes))

    def outcome(self, url: str) -> Fetched | str | None:
        """What fetching `url` gave (bytes or why not), or None if it was not fetched."""
        return self._outcomes.get(url)

    async def fetch(self, http: HttpClient, url: str, timeout_s: float | None) -> Fetched | str:
        """Fetch `url` unless this request already did; `timeout_s` is what the request has
        left, which may be less than the policy's cap."""
        outcome = self._outcomes.get(url)
        if outcome is None:
            async with self._slots:
                outcome = self._outcomes.get(url) or await self._download(http, url, timeout_s)
            self._outcomes[url] = outcome
        return outcome

    async def fetch_all(
        self, http: HttpClient, urls: Iterable[str], timeout_s: float | None
    ) -> None:
        """Fetch several URLs concurrently (each distinct one once)."""
        await asyncio.gather(*(self.fetch(http, url, timeout_s) for url in dict.fromkeys(urls)))

    async def _download(self, http: HttpClient, url: str, timeout_s: float | None) -> Fetched | str:
        policy = self.policy
        limit = min(policy.max_bytes, max(0, policy.max_request_bytes - self._reserved))
        timeout_s = policy.timeout_s if timeout_s is None else min(policy.timeout_s, timeout_s)
        self._reserved += limit
        taken = 0
        try:
            fetched = await http.guarded(policy.addresses).get(
                url, max_bytes=limit, timeout_s=timeout_s, accepts=_is_media
            )
            taken = len(fetched.data)
        except TooLarge as exc:
            if limit < policy.max_bytes:
                return f"too large (limit {policy.max_request_bytes} bytes for one request's media)"
            return str(exc)
        except FetchRefused as exc:
            return str(exc)
        finally:
            self._reserved -= limit - taken
        return fetched


def usable(outcome: Fetched | str | None, *, accept: Collection[str], max_bytes: int) -> Media:
    """The fetched media if the adapter can send it; else FetchRefused saying why."""
    if outcome is None:
        raise FetchRefused("not fetched")  # an adapter that did not fetch before translating
    if isinstance(outcome, str):
        raise FetchRefused(outcome)
    media_type = media_type_of(outcome)
    if media_type not in accept:
        raise FetchRefused(f"unsupported content type {media_type or 'unknown'}")
    if len(outcome.data) > max_bytes:
        raise FetchRefused(f"too large (limit {max_bytes} bytes)")
    return Media(media_type, outcome.data)


def unfetchable(
    param: str, reason: FetchRefused, *, provider: str, model: str | None = None
) -> InvalidRequest:
    return InvalidRequest(
        f"{param} could not be fetched: {reason}",
        param=param,
        code=CODE,
        provider=provider,
        model=model,
    )


def media_type_of(fetched: Fetched) -> str:
    """The server's Content-Type, else the URL's extension, else the image's signature."""
    media_type = normal_media_type(fetched.content_type)
    if media_type not in _UNTYPED:
        return media_type
    guessed, _ = mimetypes.guess_type(urlsplit(fetched.url).path)
    return normal_media_type(guessed or sniff_image_type(fetched.data))


def normal_media_type(media_type: str) -> str:
    media_type = media_type.partition(";")[0].strip().lower()
    return _ALIASES.get(media_type, media_type)


def sniff_image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""


def _is_media(content_type: str) -> bool:
    """Worth reading at all: a media type some adapter inlines (each adapter narrows it).
    An internal page or API answer (text/html, application/json) is never read."""
    media_type = normal_media_type(content_type)
    return (
        media_type in _UNTYPED
        or media_type == "application/pdf"
        or media_type.startswith(("image/", "audio/", "video/"))
    )
