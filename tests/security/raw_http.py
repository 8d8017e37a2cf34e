"""Raw HTTP/1.1 over a socket, for the probes aiohttp's client refuses to send: non-UTF-8 bytes,
NUL and CR in header values, broken framing, odd request lines. Each probe closes its
connection (`Connection: close`), so the reply is everything read until EOF."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

# Bytes that are not UTF-8, or not allowed in a header value (RFC 9110 section 5.5).
BAD_BYTES = [
    b"\xff",
    b"\x80",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf4\x90\x80\x80",
    b"\xe9",
    b"\x00",
    b"\r",
    b"\x7f",
    b"\x01",
    b"\x1b[31m",
]
NO_ANSWER = -1  # nothing within the read timeout
CLOSED = 0  # the connection closed without a status line


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Probe:
    name: str
    request: bytes
    half_close: bool = False  # send EOF after the request (a body shorter than announced)
    family: str = ""  # what probes of one kind share, to group their findings

    @property
    def kind(self) -> str:
        return self.family or self.name


async def send(port: int, probe: Probe, *, timeout_s: float) -> RawReply:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""
    try:
        with contextlib.suppress(ConnectionError):
            # A server may answer (a 401, a 413) and close before reading a large body.
            writer.write(probe.request)
            await writer.drain()
            if probe.half_close:
                writer.write_eof()
        async with asyncio.timeout(timeout_s):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        return RawReply(NO_ANSWER, {}, data)
    except ConnectionError:
        pass  # a reset after the reply still leaves the reply in `data`
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return parse(data)


def parse(data: bytes) -> RawReply:
    head, _, rest = data.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 1"):  # an interim reply (100 Continue): the next one counts
        head, _, rest = rest.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return RawReply(CLOSED, {}, data)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        rest = dechunk(rest)
    elif "content-length" in headers:
        rest = rest[: int(headers["content-length"])]
    return RawReply(int(parts[1]), headers, rest)


def dechunk(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        body, data = body + data[:size], data[size + 2 :]
    return body


def request(
    method: bytes,
    path: bytes,
    headers: list[bytes],
    body: bytes | None = b"",
    *,
    version: bytes = b"1.1",
) -> bytes:
    head = [method + b" " + path + b" HTTP/" + version, b"Host: 127.0.0.1", *headers]
    if body is None:
        body = b""
    elif body or method == b"POST":
        head.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join([*head, b"Connection: close", b"", b""]) + body


def probes(key: str, chat_body: bytes, embedding_body: bytes) -> list[Probe]:
    """Bad bytes in every header the gateway reads, on every keyed endpoint, then framing and
    request-line probes."""
    bearer = b"Authorization: Bearer " + key.encode()
    json_type = b"Content-Type: application/json"
    targets = {
        "chat": (b"POST", b"/v1/chat/completions", chat_body),
        "embeddings": (b"POST", b"/v1/embeddings", embedding_body),
        "models": (b"GET", b"/v1/models", b""),
        "stream": (b"GET", b"/v1/streams/req_" + b"0" * 24, b""),
    }
    found: list[Probe] = []
    for target, (method, path, body) in targets.items():
        typed = [json_type] if body else []
        for bad in BAD_BYTES:
            variants = {
                "Authorization after": [bearer + bad],
                "Authorization before": [b"Authorization: Bearer " + bad + key.encode()],
                "x-api-key after": [b"x-api-key: " + key.encode() + bad],
                "x-api-key alone": [b"x-api-key: " + bad],
                "x-switchboard-lane": [bearer, b"x-switchboard-lane: default" + bad],
                "Content-Type": [bearer, b"Content-Type: application/json" + bad],
                "Last-Event-ID": [bearer, b"Last-Event-ID: 1" + bad],
                "unknown header": [bearer, b"X-Fuzz: " + bad],
            }
            for header, lines in variants.items():
                extra = typed if header != "Content-Type" else []
                found.append(
                    Probe(
                        f"{target}: {header} with {bad!r}",
                        request(method, path, lines + extra, body),
                        family=f"bad bytes in {header}",
                    )
                )
    return found + framing_probes(bearer, json_type, chat_body)


def framing_probes(bearer: bytes, json_type: bytes, body: bytes) -> list[Probe]:
    chat = b"/v1/chat/completions"
    keyed = [bearer, json_type]

    def framed(name: str, headers: list[bytes], payload: bytes, half_close: bool = False) -> Probe:
        head = b"\r\n".join([b"POST " + chat + b" HTTP/1.1", b"Host: 127.0.0.1", *headers])
        return Probe(name, head + b"\r\nConnection: close\r\n\r\n" + payload, half_close)

    size = str(len(body)).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    return [
        Probe("path with 0xff", request(b"GET", b"/v1/models\xff", [bearer])),
        Probe("resume id with 0xff 0xfe", request(b"GET", b"/v1/streams/\xff\xfe", [bearer])),
        Probe("NUL in path", request(b"GET", b"/v1/mo\x00dels", [bearer])),
        Probe("asterisk form", request(b"GET", b"*", [bearer])),
        Probe("absolute form", request(b"GET", b"http://127.0.0.1/v1/models", [bearer])),
        Probe("unknown method", request(b"BREW", b"/v1/models", [bearer])),
        Probe("lowercase method", request(b"get", b"/v1/models", [bearer])),
        Probe("HTTP/9.9", request(b"GET", b"/v1/models", [bearer], version=b"9.9")),
        Probe("HTTP/1.0", request(b"GET", b"/v1/models", [bearer], version=b"1.0")),
        Probe("HTTP/0.9", b"GET /v1/models\r\n\r\n"),
        Probe(
            "no Host", b"GET /v1/models HTTP/1.1\r\n" + bearer + b"\r\nConnection: close\r\n\r\n"
        ),
        Probe("path of 10,000 bytes", request(b"GET", b"/" + b"a" * 10_000, [bearer])),
        Probe(
            "header of 10,000 bytes",
            request(b"GET", b"/v1/models", [bearer, b"X-Big: " + b"a" * 10_000]),
        ),
        Probe(
            "500 headers",
            request(b"GET", b"/v1/models", [bearer] + [b"X-H%d: v" % i for i in range(500)]),
        ),
        Probe("folded header", request(b"GET", b"/v1/models", [bearer, b"X-Fold: a\r\n b"])),
        Probe("space in a header name", request(b"GET", b"/v1/models", [bearer, b"X Bad: v"])),
        Probe("0xff in a header name", request(b"GET", b"/v1/models", [bearer, b"X-\xff: v"])),
        Probe("header without a colon", request(b"GET", b"/v1/models", [bearer, b"NoColon"])),
        Probe("empty header name", request(b"GET", b"/v1/models", [bearer, b": v"])),
        Probe(
            "bare LF line ends",
            b"GET /v1/models HTTP/1.1\nHost: x\n" + bearer + b"\nConnection: close\n\n",
        ),
        framed("Content-Length -1", [*keyed, b"Content-Length: -1"], body),
        framed("Content-Length abc", [*keyed, b"Content-Length: abc"], body),
        framed("Content-Length 10^20", [*keyed, b"Content-Length: 99999999999999999999"], body),
        framed(
            "two Content-Lengths", [*keyed, b"Content-Length: " + size, b"Content-Length: 5"], body
        ),
        framed("Content-Length past the body", [*keyed, b"Content-Length: 100000"], body, True),
        framed(
            "chunked and Content-Length",
            [*keyed, b"Transfer-Encoding: chunked", b"Content-Length: 3"],
            chunked,
        ),
        framed("chunked", [*keyed, b"Transfer-Encoding: chunked"], chunked),
        framed(
            "bad chunk size", [*keyed, b"Transfer-Encoding: chunked"], b"zz\r\nabc\r\n0\r\n\r\n"
        ),
        framed(
            "huge chunk size",
            [*keyed, b"Transfer-Encoding: chunked"],
            b"ffffffffffffffff\r\nabc\r\n",
            True,
        ),
        framed("gzip, chunked", [*keyed, b"Transfer-Encoding: gzip, chunked"], chunked),
        framed("unknown transfer coding", [*keyed, b"Transfer-Encoding: xchunked"], chunked),
        framed(
            "gzip body that is not gzip",
            [*keyed, b"Content-Encoding: gzip", b"Content-Length: " + size],
            body,
        ),
        framed(
            "Expect 100-continue",
            [*keyed, b"Expect: 100-continue", b"Content-Length: " + size],
            body,
        ),
        framed("upgrade to h2c", [*keyed, b"Upgrade: h2c", b"Content-Length: " + size], body),
        framed(
            "upgrade to websocket",
            [*keyed, b"Upgrade: websocket", b"Content-Length: " + size],
            body,
        ),
    ]


def generated_probes(key: str, chat_body: bytes) -> SearchStrategy[Probe]:
    """Arbitrary bytes in the headers the gateway reads (no line breaks: those end a line)."""
    names = st.sampled_from(
        [b"Authorization", b"x-api-key", b"x-switchboard-lane", b"Content-Type", b"X-Any"]
    )
    values = st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b"").replace(b"\r\n", b""))

    def build(name: bytes, value: bytes) -> Probe:
        headers = [] if name == b"Authorization" else [b"Authorization: Bearer " + key.encode()]
        headers.append(name + b": " + value)
        if name != b"Content-Type":
            headers.append(b"Content-Type: application/json")
        return Probe(
            f"{name.decode()}: {value!r}",
            request(b"POST", b"/v1/chat/completions", headers, chat_body),
            family=f"generated bytes in {name.decode()}",
        )

    return st.builds(build, names, values)
