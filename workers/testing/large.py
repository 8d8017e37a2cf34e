"""A chat completion of a chosen size (`reply_bytes=<n>`), written in pieces so the fake can
answer 200 MB without holding it: the upstream of issue #13's memory test.

The content is deterministic text that shows any reordering or loss (each 16-byte block
carries its own number), so a test can rebuild what was sent with `filler_text`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from aiohttp import web

from workers.testing.state import ClientWatch

PIECE_BYTES = 64 * 1024
_BLOCK = 16
_BLOCKS_PER_PIECE = PIECE_BYTES // _BLOCK


def filler(size: int) -> Iterator[bytes]:
    """`size` bytes of JSON-safe text in pieces of PIECE_BYTES: blocks `000000000000042 `."""
    block = 0
    left = size
    while left > 0:
        piece = b"".join(b"%015d " % (block + i) for i in range(_BLOCKS_PER_PIECE))
        block += _BLOCKS_PER_PIECE
        yield piece[:left]
        left -= len(piece)


def filler_text(size: int) -> str:
    return b"".join(filler(size)).decode()


def _head(completion_id: str, created: int, model: str) -> bytes:
    return (
        b'{"id":"%s","object":"chat.completion","created":%d,"model":"%s",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"'
        % (completion_id.encode(), created, model.encode())
    )


_TAIL = (
    b'","refusal":null},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
)


def content_size(size: int, completion_id: str, created: int, model: str) -> int:
    """How much content makes the whole body `size` bytes."""
    return max(0, size - len(_head(completion_id, created, model)) - len(_TAIL))


async def send_large_completion(
    request: web.Request,
    watch: ClientWatch,
    *,
    size: int,
    completion_id: str,
    created: int,
    model: str,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """A `size`-byte chat completion, chunked (no Content-Length: the reader must count)."""
    response = web.StreamResponse(headers={**headers, "Content-Type": "application/json"})
    try:
        await response.prepare(request)
        await response.write(_head(completion_id, created, model))
        for piece in filler(content_size(size, completion_id, created, model)):
            await response.write(piece)
            watch.events_sent += 1
        await response.write(_TAIL)
        await response.write_eof()
    except ConnectionResetError:
        # The reader hung up (a gateway refusing the reply past its cap).
        watch.record_disconnect()
    return response
