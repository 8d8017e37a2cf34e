"""Management request bodies: read once, refused clearly, never silently trimmed.

Each endpoint's body is a msgspec Struct (`schemas.py`). A field it does not know is a 400
naming it, with two exceptions declared per Struct, because LiteLLM's clients and admin scripts
send LiteLLM's whole vocabulary:
- `litellm_unimplemented`: LiteLLM fields Switchboard does not implement (guardrails, object
  permissions, ...). Accepted while they carry nothing (null, false, empty); a value that
  would mean something is a 400 saying Switchboard does not implement it, never dropped.
- `litellm_ignored`: fields LiteLLM's own Python client sends and LiteLLM itself ignores
  (`api_key` in `KeysManagementClient.generate`): accepted and dropped, as LiteLLM does.

Strings holding NUL or lone surrogates and numbers that are not finite are refused before
any database sees them (PostgreSQL would fail on both).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, TypeVar

import msgspec
from aiohttp import web

from broker.body import _message, _param, read_json_body
from workers.errors import InvalidRequest, UnsupportedParams


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    litellm_unimplemented: ClassVar[frozenset[str]] = frozenset()
    litellm_ignored: ClassVar[frozenset[str]] = frozenset()

    def check(self) -> None:
        """Checks across fields or beyond a type (durations); raise InvalidRequest."""


B = TypeVar("B", bound=Body)
EMPTY: tuple[Any, ...] = (None, False, "", [], {})


async def read_body(request: web.Request, kind: type[B], max_bytes: int) -> B:
    raw = await read_json_body(request, max_bytes)
    return decode_body(raw, kind)


def decode_body(raw: bytes, kind: type[B]) -> B:
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    check_values(data, "")
    _check_fields(data, kind)
    for name in kind.litellm_unimplemented | kind.litellm_ignored:
        data.pop(name, None)
    try:
        body = msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(_message(exc), param=_param(exc), code="invalid_value") from None
    body.check()
    return body


def _check_fields(data: dict[str, Any], kind: type[Body]) -> None:
    known = set(kind.__struct_fields__)
    tolerated = kind.litellm_unimplemented | kind.litellm_ignored
    unknown = [name for name in data if name not in known and name not in tolerated]
    if unknown:
        names = ", ".join(f"`{name}`" for name in unknown[:5])
        raise InvalidRequest(
            f"unknown field(s) {names}; this endpoint takes: {', '.join(sorted(known))}",
            param=unknown[0],
            code="unknown_field",
        )
    for name in kind.litellm_unimplemented:
        if name in data and not _is_empty(data[name]):
            raise UnsupportedParams(
                f"`{name}` is a LiteLLM setting Switchboard does not implement; remove it",
                param=name,
            )


def _is_empty(value: Any) -> bool:
    return any(value is empty or value == empty for empty in EMPTY if type(value) is type(empty))


def check_values(value: Any, path: str) -> None:
    """Refuse what no column can hold: NUL, lone surrogates, infinities and NaN."""
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"`{path or 'body'}` is not a finite number", param=path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, path)
            check_values(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_values(item, f"{path}[{index}]")


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise InvalidRequest(f"`{path or 'body'}` holds a NUL character", param=path or None)
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidRequest(
            f"`{path or 'body'}` holds text that is not valid Unicode", param=path or None
        ) from None
