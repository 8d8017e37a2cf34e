"""/v1/files: upload (multipart, streamed to the store), list, retrieve, content, delete,
in OpenAI's shapes so `client.files.*` of the official SDK works unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import msgspec
from aiohttp import BodyPartReader, web

from broker.body import UnsupportedMediaType
from broker.errors import JSON
from broker.files.callers import authenticate
from broker.files.registry import FILES, UPLOAD_PURPOSES, FileObject, new_file_id
from broker.files.storage import TooLarge
from broker.routes.keys import FRONT_DOOR
from workers.errors import InvalidRequest, RequestTooLarge

# A multipart body has two parts we read (purpose, file); a few more are skipped, past
# that the body is refused rather than walked without end.
MAX_PARTS = 8
MAX_PURPOSE_BYTES = 64
MAX_FILENAME_CHARS = 255
MAX_LIST_LIMIT = 10_000
encode = msgspec.json.Encoder().encode


class FileList(msgspec.Struct, kw_only=True):
    data: list[FileObject]
    has_more: bool
    object: Literal["list"] = "list"
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


def json_response(value: object, status: int = 200) -> web.Response:
    return web.Response(body=encode(value), status=status, content_type=JSON)


async def upload(request: web.Request) -> web.Response:
    front = request.app[FRONT_DOOR]
    caller = await authenticate(request)
    files = request.app[FILES]
    limit = front.settings.files.max_upload_bytes
    if not request.content_type.startswith("multipart/"):
        raise UnsupportedMediaType(
            f"expected `Content-Type: multipart/form-data`, got `{request.content_type}`",
            param="Content-Type",
        )
    # Room for the multipart framing around the file itself.
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise _too_large(limit)
    file_id = new_file_id()
    try:
        purpose, filename = await _read_parts(request, file_id, limit)
        if filename is None:
            raise InvalidRequest("the upload has no `file` part", param="file")
        if purpose not in UPLOAD_PURPOSES:
            raise InvalidRequest(
                f"`purpose` must be one of: {', '.join(sorted(UPLOAD_PURPOSES))}",
                param="purpose",
            )
        saved = await files.save(file_id, caller.owner, filename=filename, purpose=purpose)
    except BaseException:
        await files.store.delete(file_id)
        raise
    return json_response(saved)


async def _read_parts(
    request: web.Request, file_id: str, limit: int
) -> tuple[str | None, str | None]:
    """(purpose, filename) of a multipart upload whose file part went to the store."""
    purpose: str | None = None
    filename: str | None = None
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS):
            part = await reader.next()
            if part is None:
                return purpose, filename
            if not isinstance(part, BodyPartReader):
                raise InvalidRequest("nested multipart bodies are not accepted", param="file")
            if part.name == "purpose":
                purpose = (await _small(part)).strip()
            elif part.name == "file" and filename is None:
                filename = (part.filename or "upload.jsonl")[:MAX_FILENAME_CHARS]
                await request.app[FILES].store.put_stream(file_id, _chunks(part), limit)
            else:
                await part.release()
    except TooLarge:
        raise _too_large(limit) from None
    except (ValueError, AssertionError, UnicodeDecodeError) as exc:
        # aiohttp's multipart parser refuses a malformed body with these.
        raise InvalidRequest(
            f"the multipart body could not be read: {str(exc)[:200]}", code="invalid_multipart"
        ) from None
    raise InvalidRequest(f"a multipart upload has at most {MAX_PARTS} parts", param="file")


async def _small(part: BodyPartReader) -> str:
    data = b""
    while chunk := await part.read_chunk(MAX_PURPOSE_BYTES + 1):
        data += chunk
        if len(data) > MAX_PURPOSE_BYTES:
            raise InvalidRequest("`purpose` is too long", param="purpose")
    return data.decode(errors="replace")


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(256 * 1024):
        yield chunk


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"the file is larger than the {limit} bytes this gateway accepts "
        "(switchboard_settings.files.max_upload_bytes)",
        param="file",
    )


async def list_files(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    query = request.query
    limit = _int_param(query.get("limit"), "limit", default=MAX_LIST_LIMIT)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be `asc` or `desc`", param="order")
    found = await request.app[FILES].list(caller.owner, query.get("purpose"))
    if order == "asc":
        found.reverse()
    after = query.get("after")
    if after is not None:
        ids = [f.id for f in found]
        found = found[ids.index(after) + 1 :] if after in ids else []
    page = found[:limit]
    return json_response(
        FileList(
            data=page,
            has_more=len(found) > limit,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
        )
    )


def _int_param(text: str | None, name: str, *, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIST_LIMIT:
        raise InvalidRequest(f"`{name}` must be an integer from 1 to {MAX_LIST_LIMIT}", param=name)
    return int(text)


async def retrieve(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    return json_response(await request.app[FILES].get(caller.owner, request.match_info["file_id"]))


async def content(request: web.Request) -> web.StreamResponse:
    caller = await authenticate(request)
    files = request.app[FILES]
    file_id = request.match_info["file_id"]
    chunks = await files.content(caller.owner, file_id)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


async def delete(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    file_id = request.match_info["file_id"]
    await request.app[FILES].delete(caller.owner, file_id)
    return json_response(FileDeleted(id=file_id))


def add_file_routes(app: web.Application) -> None:
    app.router.add_post("/v1/files", upload)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", retrieve)
    app.router.add_delete("/v1/files/{file_id}", delete)
    app.router.add_get("/v1/files/{file_id}/content", content)
