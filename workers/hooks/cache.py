"""The response cache's rules (issue #19), apart from where it is stored: which requests
it answers, the key of a request, a request's own controls, and an answer replayed as a
stream. The front door's `broker/response_cache.py` reads and writes Redis with them.

The key is a SHA-256 of what decides the answer: the model group and the body without the
fields that do not (who asks, how it is delivered, the gateway's own options), as JSON with
sorted keys, so `{"a":1,"b":2}` and `{"b":2,"a":1}` share an answer. With `scope: key` the
caller's key alias is part of it: one key never reads another's answers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

from workers.errors import InvalidRequest
from workers.hooks.guardrails import requested
from workers.params import GATEWAY_FIELDS
from workers.settings.hooks import CacheParams

# Body fields that do not change the answer.
_NOT_IN_KEY = GATEWAY_FIELDS | {
    "user",
    "stream",
    "stream_options",
    "metadata",
    "guardrails",
    "safety_identifier",
    "store",
    "service_tier",
    "prompt_cache_key",
}
# The LiteLLM call types that name each API's requests (`cache_params.supported_call_types`).
_CALL_TYPES = {
    "chat": ("completion", "acompletion"),
    "embedding": ("embedding", "aembedding"),
    "text_completion": ("text_completion", "atext_completion"),
    "messages": ("anthropic_messages",),
    "responses": ("responses", "aresponses"),
}
MAX_TTL_S = 30 * 86400.0


class CacheControl(msgspec.Struct, kw_only=True, frozen=True):
    """A request's own say, from its body's `cache` object (LiteLLM's keys) and its
    `Cache-Control` header."""

    no_cache: bool = False  # do not answer from the cache
    no_store: bool = False  # do not store this answer
    ttl_s: float | None = None  # store it for this long
    max_age_s: float | None = None  # `s-maxage`: accept only answers younger than this
    namespace: str | None = None
    use_cache: bool | None = None  # mode default_off: opt in


def control_of(body: Mapping[str, Any], header: str | None) -> CacheControl:
    """The request's controls; a malformed `cache` object is a 400 naming it."""
    given = body.get("cache")
    fields: dict[str, Any] = {}
    if given is not None:
        if not isinstance(given, dict):
            raise InvalidRequest("`cache` must be an object", param="cache")
        fields = _from_body(given)
    if header:
        fields = {**_from_header(header), **fields}
    return CacheControl(**fields)


def _from_body(given: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, field in (
        ("no-cache", "no_cache"),
        ("no-store", "no_store"),
        ("use-cache", "use_cache"),
    ):
        if name in given:
            if not isinstance(given[name], bool):
                raise InvalidRequest(f"`cache.{name}` must be a boolean", param=f"cache.{name}")
            fields[field] = given[name]
    for name, field in (("ttl", "ttl_s"), ("s-maxage", "max_age_s")):
        if name in given:
            fields[field] = _seconds(given[name], f"cache.{name}")
    if "namespace" in given:
        namespace = given["namespace"]
        if not isinstance(namespace, str) or not 0 < len(namespace) <= 64:
            raise InvalidRequest(
                "`cache.namespace` must be a string of 1 to 64 characters",
                param="cache.namespace",
            )
        fields["namespace"] = namespace
    return fields


def _seconds(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TTL_S:
        raise InvalidRequest(
            f"`{param}` must be a number of seconds up to {MAX_TTL_S:g}", param=param
        )
    return float(value)


def _from_header(header: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for directive in header.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name == "no-cache":
            fields["no_cache"] = True
        elif name == "no-store":
            fields["no_store"] = True
        elif name in ("s-maxage", "max-age") and value.isdigit():
            fields["max_age_s"] = min(float(value), MAX_TTL_S)
    return fields


def is_cacheable(params: CacheParams, kind: str, control: CacheControl) -> bool:
    if not any(t in params.supported_call_types for t in _CALL_TYPES[kind]):
        return False
    if params.mode == "default_off":
        return bool(control.use_cache)
    return control.use_cache is not False


def cache_digest(
    body: Mapping[str, Any],
    model_group: str,
    kind: str,
    scope: str | None,
    vary: Mapping[str, str] | None = None,
) -> str:
    """The hex SHA-256 that names a request's answer; `vary`: request headers that change
    it (Anthropic's `anthropic-beta`)."""
    decisive = {k: v for k, v in body.items() if k not in _NOT_IN_KEY}
    decisive["model"] = model_group
    # The guardrails a request names decide what answer it may get (a post_call check).
    guardrails = requested(body)
    if guardrails:
        decisive["__guardrails"] = sorted(guardrails)
    decisive["__kind"] = kind
    if kind == "responses":
        # A stored response's id can be continued (`previous_response_id`); an unstored
        # one's cannot, so the two never answer each other.
        decisive["__stored"] = body.get("store") is not False
    if scope is not None:
        decisive["__scope"] = scope
    if vary:
        decisive["__vary"] = dict(vary)
    return hashlib.sha256(orjson.dumps(decisive, option=orjson.OPT_SORT_KEYS)).hexdigest()


class CachedAnswer(msgspec.Struct, array_like=True, frozen=True):
    """What the cache holds for one key: the response JSON as the client first got it."""

    created_s: float
    body: bytes
    # What the first answer cost: what each hit saves.
    cost_usd: float | None = None

    @property
    def age_s(self) -> float:
        return max(0.0, time.time() - self.created_s)


encode_answer = msgspec.msgpack.Encoder().encode
decode_answer = msgspec.msgpack.Decoder(CachedAnswer).decode
