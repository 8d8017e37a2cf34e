"""Images and documents for Converse, which takes them only as bytes (or S3 locations).

`data:` URLs are decoded; http(s) image URLs are fetched through the guarded media fetch
(workers/providers/media.py: public addresses only, each distinct URL once per request, several
at a time) before the request is translated. The format comes from the media type, or from
the bytes themselves when nothing names one.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from workers.errors import InvalidRequest
from workers.fetch_guard import FetchRefused
from workers.providers.bedrock.converse import (
    DocumentBlock,
    DocumentSource,
    ImageBlock,
    ImageSource,
)
from workers.providers.bedrock.errors import PROVIDER
from workers.providers.media import Media, MediaFetches, sniff_image_type, unfetchable, usable
from workers.wire import FileRef, Message

IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
# Converse's documented limits: 3.75 MB per image, 4.5 MB per document.
MAX_IMAGE_BYTES = 3_750_000
MAX_DOCUMENT_BYTES = 4_500_000
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[^;,]*)*(;base64)?,", re.ASCII)
# A document name may hold letters, digits, single spaces, hyphens, parentheses and brackets.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9\-()\[\] ]+")


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_image_url", provider=PROVIDER)


def decode_data_url(url: str, param: str) -> Media:
    match = _DATA_URL.match(url)
    if match is None or not match.group(2):
        raise _bad("expected a base64 `data:<media type>;base64,...` URL", param)
    try:
        data = base64.b64decode(url[match.end() :], validate=True)
    except binascii.Error as exc:
        raise _bad(f"the data URL is not valid base64: {exc}", param) from exc
    return Media((match.group(1) or "").lower(), data)


def remote_image_urls(messages: Iterable[Message]) -> list[str]:
    """The distinct http(s) image URLs of a conversation, in order."""
    urls: dict[str, None] = {}
    for message in messages:
        if isinstance(message.content, list):
            for part in message.content:
                url = part.image_url.url if part.image_url is not None else ""
                if url.startswith(("http://", "https://")):
                    urls[url] = None
    return list(urls)


def image_media(url: str, media: MediaFetches, param: str) -> Media:
    """The image a part names: a data: URL's bytes, or what the request fetched."""
    if url.startswith("data:"):
        return decode_data_url(url, param)
    if not url.startswith(("http://", "https://")):
        raise _bad("Bedrock takes images as data: URLs or http(s) URLs", param)
    try:
        return usable(media.outcome(url), accept=IMAGE_FORMATS, max_bytes=MAX_IMAGE_BYTES)
    except FetchRefused as exc:
        raise unfetchable(f"{param}.image_url", exc, provider=PROVIDER) from None


def image_block(media: Media, param: str) -> ImageBlock:
    image_format = IMAGE_FORMATS.get(media.media_type) or IMAGE_FORMATS.get(
        sniff_image_type(media.data)
    )
    if image_format is None:
        raise _bad(
            f"Bedrock takes png, jpeg, gif or webp images; got {media.media_type or 'unknown'}",
            param,
        )
    if not media.data or len(media.data) > MAX_IMAGE_BYTES:
        raise _bad(f"an image must hold 1 to {MAX_IMAGE_BYTES} bytes", param)
    return ImageBlock(format=image_format, source=ImageSource(bytes=media.data))


def document_block(file: FileRef, ordinal: int, param: str) -> DocumentBlock:
    """A `file` part with inline `file_data`; OpenAI file ids mean nothing to Bedrock."""
    if not file.file_data:
        raise InvalidRequest(
            "Bedrock takes files only inline as `file_data` (a base64 data URL), not file_id",
            param=param,
            provider=PROVIDER,
        )
    media = decode_data_url(file.file_data, param)
    document_format = DOCUMENT_FORMATS.get(media.media_type)
    if document_format is None:
        raise InvalidRequest(
            f"Bedrock does not take {media.media_type or 'untyped'} documents; it takes "
            f"{', '.join(sorted(set(DOCUMENT_FORMATS.values())))}",
            param=param,
            provider=PROVIDER,
        )
    if not media.data or len(media.data) > MAX_DOCUMENT_BYTES:
        raise InvalidRequest(
            f"a document must hold 1 to {MAX_DOCUMENT_BYTES} bytes", param=param, provider=PROVIDER
        )
    return DocumentBlock(
        format=document_format,
        name=_document_name(file.filename, ordinal),
        source=DocumentSource(bytes=media.data),
    )


def _document_name(filename: str | None, ordinal: int) -> str:
    # The name is shown to the model; strip the extension and anything the service rejects.
    stem = (filename or "").rsplit(".", 1)[0]
    name = " ".join(_NAME_UNSAFE.sub(" ", stem).split())[:200]
    return name or f"document {ordinal}"
