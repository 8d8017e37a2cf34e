"""The fuzz test's requests: for every operation of the OpenAPI document, bodies generated
from its request schema (most of them addressed to a model the config serves, so they reach a
worker and a provider) with hostile mutations, and header sets (keys of every scope, missing
and wrong ones, content types, lanes, encodings, unknown headers). Generation is derandomized
hypothesis: the same code gives the same cases, so a failure in CI reproduces locally."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from tests.security.fuzz_values import (
    HOSTILE_NUMBER,
    HOSTILE_STRINGS,
    HOSTILE_VALUE,
    JSON_VALUES,
    NESTED,
    TEXT,
    WRONG_TYPES,
    Raw,
    SchemaStrategies,
    one_in,
    serialize,
)

# Stands in a resume path for the id of a request the run already made (filled when sent).
RECENT_ID = "{recent}"


@dataclass
class Case:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes | None
    operation: str
    tags: list[str] = field(default_factory=list)
    # The `timeout` the body asks for, when it is a number: a short one legitimately ends
    # in 504 (issue #13 item 4: a passed deadline is a 504 `timeout`).
    client_timeout_s: float | None = None


@dataclass(frozen=True)
class Target:
    """What the generated requests aim at: the served config's names and keys."""

    chat_models: Sequence[str]
    embedding_models: Sequence[str]
    keys: Sequence[str]  # master first, then the scoped keys
    lanes: Sequence[str]
    max_body_bytes: int
    media_urls: Sequence[str]  # image URLs, all on this machine


def collect(strategy: SearchStrategy[Any], count: int) -> list[Any]:
    """`count` distinct examples of `strategy`, the same ones on every run (derandomized, no
    database, no shrinking: this only generates; the test sends them). Hypothesis repeats
    simple examples, so it is asked for a quarter more and the repeats are dropped."""
    found: list[Any] = []

    @settings(
        max_examples=count + count // 4,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def gather(example: Any) -> None:
        found.append(example)

    gather()
    distinct = {repr(example): example for example in found}
    return list(distinct.values())[:count]


# ------------------------------------------------------------------------------------ headers


def auth_headers(keys: Sequence[str]) -> SearchStrategy[list[tuple[str, str]]]:
    master, *scoped = keys
    valid = [("Authorization", f"Bearer {key}") for key in keys]
    valid += [("x-api-key", key) for key in keys]
    invalid: list[list[tuple[str, str]]] = [
        [],
        [("Authorization", "Bearer sk-wrong-key")],
        [("Authorization", f"bearer {master}")],
        [("Authorization", f"Bearer  {master} ")],
        [("Authorization", "Bearer ")],
        [("Authorization", "Bearer")],
        [("Authorization", f"Basic {master}")],
        [("Authorization", master)],
        [("Authorization", "Bearer " + "k" * 9000)],
        [("Authorization", "Bearer ключ-🔑")],
        [("x-api-key", "")],
        [("x-api-key", "é" * 40)],
        [("Authorization", "Bearer sk-wrong-key"), ("x-api-key", master)],
        [("Authorization", f"Bearer {scoped[0]}"), ("Authorization", f"Bearer {master}")],
    ]
    # Three in four requests carry a valid key, so most get past authentication.
    keyed = st.sampled_from(valid).map(lambda pair: [pair])
    return one_in(4).flatmap(lambda is_bad: st.sampled_from(invalid) if is_bad else keyed)


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json; charset=latin-1",
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "application/json; boundary=\u00e9",
]
ENCODINGS = ["gzip", "deflate", "br", "zstd", "identity", "x-unknown"]
HEADER_NAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~",
    min_size=1,
    max_size=24,
)
# What aiohttp's client sends: printable text and tab (it refuses other control characters;
# the raw socket probes send those).
PRINTABLE = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), whitelist_characters="\t"), max_size=40
)
# Past aiohttp's 8,190-byte line limit, or wide: rare, or they would hide everything else.
LONG_VALUES = st.sampled_from(["x" * 9000, "\u00ff" * 100, "\U0001f600" * 50])
HEADER_VALUE = one_in(40).flatmap(lambda is_long: LONG_VALUES if is_long else PRINTABLE)


def printable(text: str) -> str:
    """`text` without the control characters aiohttp's client refuses in a header."""
    return "".join(ch for ch in text if ch == "\t" or not unicodedata.category(ch).startswith("C"))


@st.composite
def header_set(
    draw: DrawFn, target: Target, *, is_json_body: bool, extra: Sequence[tuple[str, str]] = ()
) -> tuple[list[tuple[str, str]], list[str]]:
    headers = list(draw(auth_headers(target.keys)))
    tags: list[str] = []
    if is_json_body:
        content_type = draw(st.sampled_from(CONTENT_TYPES[:2] * 20 + CONTENT_TYPES))
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        if content_type not in CONTENT_TYPES[:2]:
            tags.append(f"content-type={content_type}")
        if draw(one_in(10)):
            encoding = draw(st.sampled_from(ENCODINGS))
            headers.append(("Content-Encoding", encoding))
            tags.append(f"content-encoding={encoding}")
    lane = draw(st.sampled_from([None] * 16 + [*target.lanes, "nope", "ünï", "x" * 300, ""]))
    if lane is not None:
        headers.append(("x-switchboard-lane", lane))
    headers += extra
    headers += draw(st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=2))
    return headers, tags


# ------------------------------------------------------------------------------------- bodies


@st.composite
def mutated(
    draw: DrawFn, body: dict[str, Any], schema_fields: dict[str, bool], max_body_bytes: int
) -> tuple[Any, list[str]]:
    """Zero to two hostile changes to a body: numbers past every bound in a numeric field,
    deep nesting, wrong types, unknown fields, hostile strings; or a different body entirely."""
    tags: list[str] = []
    for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
        kind = draw(st.sampled_from(["number", "nesting", "type", "unknown", "string", "none"]))
        numeric_fields = sorted(n for n, numeric in schema_fields.items() if numeric)
        if kind == "number" and numeric_fields:  # some bodies have no number (issue #17)
            name = draw(st.sampled_from(numeric_fields))
            body[name] = draw(HOSTILE_NUMBER)
        elif kind == "nesting":
            name = draw(st.sampled_from(["metadata", "x_unknown", "thinking", "messages", "input"]))
            nested = draw(NESTED)
            body[name] = {"deep": nested} if name in ("metadata", "thinking") else nested
        elif kind == "type":
            name = draw(st.sampled_from(sorted(schema_fields)))
            body[name] = draw(st.sampled_from(WRONG_TYPES))
        elif kind == "unknown":
            name = draw(st.sampled_from(["x_unknown", "api_base", "base_url", "__proto__", ""]))
            body[name] = draw(HOSTILE_VALUE)
        elif kind == "string":
            name = draw(st.sampled_from(sorted(schema_fields)))
            body[name] = draw(st.sampled_from(HOSTILE_STRINGS))
        else:
            continue
        tags.append(f"{kind}:{name}={_short(body[name])}")
    return body, tags


def _short(value: Any) -> str:
    text = value.text if isinstance(value, Raw) else json.dumps(value, default=str)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} chars)"


def whole_body_variants(valid: bytes, max_body_bytes: int) -> list[tuple[bytes, str]]:
    """Bodies that are not the JSON object the schema describes."""
    filler = b'"' + b"x" * (max_body_bytes - len(valid) - 64) + b'"'
    return [
        (b"", "empty body"),
        (b"null", "null"),
        (b"[]", "array"),
        (b'"text"', "string"),
        (b"1e400", "bare 1e400"),
        (valid[: len(valid) // 2], "truncated"),
        (valid + b"}", "trailing garbage"),
        (valid.replace(b'"', b"'"), "single quotes"),
        (b"\xef\xbb\xbf" + valid, "utf-8 BOM"),
        (valid.decode().encode("utf-16"), "utf-16"),
        (valid.replace(b'"model"', b'"model":"x","model"', 1), "duplicate key"),
        (valid.replace(b"{", b'{"s":"\xff\xfe\xc0\xaf",', 1), "invalid utf-8 in a string"),
        (valid.replace(b"{", b'{"pad":' + filler + b",", 1), "just under the body limit"),
        (
            valid.replace(b"{", b'{"pad":' + filler + b"xxxxxxxxxxxxxxxxxxxxxxxx" * 8 + b",", 1),
            "over the body limit",
        ),
        (b"{" * 100_000, "100k open braces"),
        (b"\x00" * 64, "NUL bytes"),
    ]


def body_strategy(
    strategies: SchemaStrategies,
    schema: dict[str, Any],
    base: Callable[[DrawFn], dict[str, Any]],
    target: Target,
) -> SearchStrategy[tuple[bytes, list[str], float | None]]:
    """Bodies for one operation: a valid base (so many reach a worker), some optional
    fields generated from the schema, hostile mutations; now and then a whole-body variant."""
    props, required = strategies.properties(schema)
    numeric = {name: strategies.is_numeric(sub) for name, sub in props.items()}
    optional = sorted(set(props) - required)

    @st.composite
    def bodies(draw: DrawFn) -> tuple[bytes, list[str], float | None]:
        body = base(draw)
        if draw(one_in(5)):
            # Entirely schema-generated: whatever the schema allows, valid or not downstream.
            body = draw(strategies.value(schema))
        names = st.lists(st.sampled_from(optional), max_size=4, unique=True)
        # Some bodies have no optional field (issue #17's `{"key": ...}`).
        for name in draw(names) if optional else ():
            body[name] = draw(strategies.value(props[name], name))
        body, tags = draw(mutated(body, numeric, target.max_body_bytes))
        raw = serialize(body)
        if draw(one_in(15)):
            raw, tag = draw(
                st.sampled_from(whole_body_variants(serialize(base(draw)), target.max_body_bytes))
            )
            return raw, [tag], None
        timeout = body.get("timeout")
        is_number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
        return raw, tags, float(timeout) if is_number else None

    return bodies()


def model_names(served: Sequence[str]) -> SearchStrategy[str]:
    """Mostly a model the config serves (so the request reaches a worker), else any text."""
    names = st.sampled_from([*served] * 6 + ["nope", ""])
    return one_in(8).flatmap(lambda is_any: TEXT if is_any else names)


def messages(draw: DrawFn, target: Target) -> list[Any]:
    text = draw(st.sampled_from(["hi", "Say hello"]) | TEXT)
    simple: list[Any] = [{"role": "user", "content": text}]
    image = {"type": "image_url", "image_url": {"url": draw(st.sampled_from(target.media_urls))}}
    choices = [
        simple,
        [{"role": "system", "content": "be brief"}, *simple],
        [{"role": "user", "content": [{"type": "text", "text": text}, image]}],
        [
            *simple,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        [{"role": "user", "content": "x" * (target.max_body_bytes // 2)}],
        [{"role": "user", "content": "hi"}] * 500,
    ]
    picked: list[Any] = draw(st.sampled_from(choices[:2] * 4 + choices))
    return picked


def chat_base(target: Target) -> Callable[[DrawFn], dict[str, Any]]:
    def base(draw: DrawFn) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": draw(model_names(target.chat_models)),
            "messages": messages(draw, target),
        }
        if draw(st.booleans()):
            body["stream"] = True
        return body

    return base


def messages_base(target: Target) -> Callable[[DrawFn], dict[str, Any]]:
    """An Anthropic Messages body (issue #18): a user turn, maybe a tool loop, maybe a stream."""
    blocks = st.sampled_from(
        [
            "Say hello",
            [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
            [{"type": "image", "source": {"type": "url", "url": "http://127.0.0.1:1/x.png"}}],
            [{"type": "document", "source": {"type": "text", "data": "a doc"}}],
            [{"type": "server_tool_use", "id": "x"}],
            [],
        ]
    )

    def base(draw: DrawFn) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": draw(model_names(target.chat_models)),
            "max_tokens": draw(st.sampled_from([1, 64, 1024, 0, -1, 2**40])),
            "messages": [{"role": "user", "content": draw(blocks)}],
        }
        if draw(st.booleans()):
            body["stream"] = True
        return body

    return base


def responses_base(target: Target) -> Callable[[DrawFn], dict[str, Any]]:
    """An OpenAI Responses body (issue #18): text or items, maybe a follow-up, maybe a stream."""
    inputs = st.sampled_from(
        [
            "Say hello",
            [{"role": "user", "content": "hi"}],
            [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}],
            [{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}],
            [{"type": "reasoning", "summary": [], "encrypted_content": "sbr1:!!"}],
            [{"type": "input_image", "image_url": "http://127.0.0.1:1/x.png"}],
            [{"type": "item_reference", "id": "msg_1"}],
            [],
        ]
    )

    def base(draw: DrawFn) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": draw(model_names(target.chat_models)),
            "input": draw(inputs),
        }
        if draw(one_in(4)):
            body["previous_response_id"] = draw(
                st.sampled_from(["resp_" + "0" * 32, "resp_x", "", "resp_" + "a" * 500])
            )
        if draw(st.booleans()):
            body["stream"] = True
        return body

    return base


def embedding_base(target: Target) -> Callable[[DrawFn], dict[str, Any]]:
    def base(draw: DrawFn) -> dict[str, Any]:
        inputs = st.one_of(
            TEXT,
            st.lists(TEXT, min_size=1, max_size=4),
            st.lists(st.integers(0, 100_000), min_size=1, max_size=8),
            st.lists(st.lists(st.integers(0, 100_000), max_size=4), min_size=1, max_size=3),
            st.sampled_from([[], [[]], [1, "a"], [[1], ["a"]], [-1], [2**64]]),
            st.lists(JSON_VALUES, max_size=3),
        )
        model = draw(model_names(target.embedding_models))
        return {"model": model, "input": draw(inputs)}

    return base


# ------------------------------------------------------------------------- other operations

REQUEST_IDS = st.one_of(
    st.just(RECENT_ID),
    st.just(RECENT_ID),
    st.text(max_size=40).map(lambda text: quote(text, safe="")),
    st.sampled_from(
        [
            "req_" + "0" * 24,
            "req_" + "f" * 24 + "0" * 16,
            "req_",
            "%00",
            "%ff%fe",
            "%C0%AF",
            "..%2F..%2Fetc",
            "a" * 5000,
            "a" * 9000,
            "{recent}%00",
            "*",
        ]
    ),
)
PARAMETER_TEXT = st.one_of(
    st.integers(-5, 1000).map(str),
    HOSTILE_NUMBER.map(lambda value: value.text if isinstance(value, Raw) else json.dumps(value)),
    st.sampled_from(HOSTILE_STRINGS[:12]),
    TEXT,
)


# A pass-through's `{path}`: what each provider serves (so the fake's handlers get the hostile
# bodies and headers), or any request id (a 404 there, or the gateway's invalid_path).
PASSTHROUGH_PATHS = st.one_of(
    st.sampled_from(
        [
            "v1/chat/completions",
            "v1/messages",
            "v1beta/models/gemini-2.5-flash:generateContent",
            "openai/deployments/my-gpt4o/chat/completions",
            "openai/responses",
            "model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse",
            "model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse-stream",
            "v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4-5:rawPredict",
            "v1/projects/p/locations/l/publishers/anthropic/models/c:streamRawPredict",
            "v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:countTokens",
        ]
    ),
    REQUEST_IDS,
)


def filled_path(path: str, key: str, draw: DrawFn) -> str:
    """`path` with its `{key}` parameter drawn."""
    values = PASSTHROUGH_PATHS if path.endswith("/{path}") and key == "path" else REQUEST_IDS
    return path.replace("{" + key + "}", draw(values))


def parameter_case(
    operation: dict[str, Any], method: str, path: str, target: Target, name: str
) -> SearchStrategy[Case]:
    """Requests to an operation without a body: its path, query and header parameters."""
    parameters = operation.get("parameters", [])

    @st.composite
    def cases(draw: DrawFn) -> Case:
        filled = path
        query: list[str] = []
        extra: list[tuple[str, str]] = []
        for parameter in parameters:
            where, key = parameter["in"], parameter["name"]
            if where == "path":
                filled = filled_path(filled, key, draw)
            elif draw(st.booleans()):
                value = draw(PARAMETER_TEXT)
                if where == "query":
                    query.append(f"{quote(key)}={quote(value, safe='')}")
                else:
                    extra.append((key, printable(value)))
        if draw(one_in(6)):
            query.append(f"{quote(draw(TEXT), safe='')}={quote(draw(TEXT), safe='')}")
        headers, tags = draw(header_set(target, is_json_body=False, extra=extra))
        url = filled + ("?" + "&".join(query) if query else "")
        return Case(method.upper(), url, headers, None, name, tags)

    return cases()


def body_case(
    strategies: SchemaStrategies,
    operation: dict[str, Any],
    path: str,
    target: Target,
    name: str,
) -> SearchStrategy[Case]:
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    refs = [part.get("$ref", "") for part in schema.get("allOf", [schema])]
    if any(ref.endswith("/ChatCompletionRequest") for ref in refs):
        base = chat_base(target)
    elif any(ref.endswith("/EmbeddingRequest") for ref in refs):
        base = embedding_base(target)
    elif any(ref.endswith("/MessagesRequest") for ref in refs):
        base = messages_base(target)
    elif any(ref.endswith("/ResponsesRequest") for ref in refs):
        base = responses_base(target)
    else:  # a new body endpoint: whatever its schema generates

        def base(draw: DrawFn) -> dict[str, Any]:
            return dict(draw(strategies.value(schema)))

    bodies = body_strategy(strategies, schema, base, target)

    path_keys = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]

    @st.composite
    def cases(draw: DrawFn) -> Case:
        body, body_tags, timeout = draw(bodies)
        headers, header_tags = draw(header_set(target, is_json_body=True))
        filled = path
        for key in path_keys:
            filled = filled_path(filled, key, draw)
        return Case("POST", filled, headers, body, name, body_tags + header_tags, timeout)

    return cases()


MULTIPART_BOUNDARY = "fuzzboundary"
UPLOAD_LINES = [
    b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n',
    b"not json\n",
    b"\x00\xff" * 50,
    b"",
]


def multipart_body(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    lines: list[bytes] = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        lines += [
            f"--{MULTIPART_BOUNDARY}".encode(),
            f"Content-Disposition: {disposition}".encode(),
        ]
        lines += [b"", data]
    return b"\r\n".join([*lines, f"--{MULTIPART_BOUNDARY}--".encode(), b""])


def multipart_case(path: str, target: Target, name: str) -> SearchStrategy[Case]:
    """Uploads: good and bad purposes, file parts or none, files named anything, bodies cut
    short or not multipart at all."""

    @st.composite
    def cases(draw: DrawFn) -> Case:
        parts: list[tuple[str, str | None, bytes]] = []
        if draw(st.booleans()):
            purpose = draw(st.sampled_from(["batch", "user_data", "batch_output", ""]) | TEXT)
            parts.append(("purpose", None, purpose.encode(errors="replace")))
        if draw(one_in(4)) is False:
            filename = draw(st.sampled_from(["in.jsonl", "../../etc/passwd", "é" * 300]) | TEXT)
            data = b"".join(draw(st.lists(st.sampled_from(UPLOAD_LINES), max_size=5)))
            parts.append(("file", printable(filename).replace('"', ""), data))
        if draw(one_in(8)):
            parts.append((draw(TEXT).replace('"', ""), None, draw(st.binary(max_size=50))))
        body = multipart_body(parts)
        if draw(one_in(8)):
            body = body[: draw(st.integers(0, len(body)))]
        headers, tags = draw(header_set(target, is_json_body=False))
        content_type = draw(
            st.sampled_from([f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"] * 6)
            | st.sampled_from(CONTENT_TYPES)
        )
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        return Case("POST", path, headers, body, name, tags)

    return cases()


OFF_ROUTE = [
    ("GET", "/v1/chat/completions"),
    ("PUT", "/v1/chat/completions"),
    ("DELETE", "/v1/models"),
    ("POST", "/v1/models"),
    ("PATCH", "/v1/embeddings"),
    ("POST", "/health/readiness"),
    ("OPTIONS", "/v1/chat/completions"),
    ("TRACE", "/v1/models"),
    ("GET", "/v2/chat/completions"),
    ("GET", "/v1/chat/completions/"),
    ("GET", "//v1/models"),
    ("GET", "/v1/models/../metrics"),
    ("GET", "/%ff"),
    ("GET", "/%C0%AF"),
    ("GET", "/v1/streams/"),
    ("GET", "/v1/streams/a/b"),
    ("POST", "/v1/completions"),
    ("GET", "/" + "a" * 9000),
    ("BREW", "/v1/models"),
]


def off_route_case(target: Target) -> SearchStrategy[Case]:
    @st.composite
    def cases(draw: DrawFn) -> Case:
        method, path = draw(st.sampled_from(OFF_ROUTE))
        headers, tags = draw(header_set(target, is_json_body=method in ("POST", "PUT", "PATCH")))
        body = b'{"model": "x"}' if method in ("POST", "PUT", "PATCH") else None
        return Case(method, path, headers, body, "off-route", tags)

    return cases()


def plan(document: dict[str, Any], target: Target, counts: dict[str, int]) -> list[Case]:
    """The generated cases for every operation of `document` (`counts` by operationId, the
    `default` entry for the rest), and the requests no route serves."""
    components = document["components"]["schemas"]
    strategies = SchemaStrategies(
        components,
        {
            "model": st.sampled_from([*target.chat_models, *target.embedding_models]) | TEXT,
            "url": st.sampled_from(target.media_urls),
        },
    )
    batches: list[list[Case]] = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            name = operation["operationId"]
            count = counts.get(name, counts["default"])
            if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
                strategy = multipart_case(path, target, name)
            elif "requestBody" in operation:
                strategy = body_case(strategies, operation, path, target, name)
            else:
                strategy = parameter_case(operation, method, path, target, name)
            batches.append(collect(strategy, count))
    batches.append(collect(off_route_case(target), counts.get("off-route", counts["default"])))
    # Interleaved, so resumes and reads meet the queue while inference requests are in it.
    longest = max(len(batch) for batch in batches)
    return [batch[i] for i in range(longest) for batch in batches if i < len(batch)]
