"""The fake's answer when `~auto` is on and `response_format` asks for JSON (issue #16): a
JSON object, shaped by the request's schema when it gives one, so a demo's structured-output
call parses and validates."""

from __future__ import annotations

from typing import Any

import msgspec

from workers.testing.reply import ReplyPlan
from workers.testing.scenario import Scenario
from workers.testing.tokens import count_tokens, split_text

# Nested schemas are filled this deep; below, objects are empty.
MAX_DEPTH = 8


def json_reply(
    plan: ReplyPlan, scenario: Scenario, response_format: dict[str, Any], question: str
) -> ReplyPlan:
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        value = example_of(schema, question, 0)
    elif kind == "json_object":
        value = {"answer": plan.text, "question": question[:64]}
    else:
        return plan
    text = msgspec.json.encode(value).decode()
    visible = count_tokens(text)
    return msgspec.structs.replace(
        plan,
        text=text,
        pieces=split_text(text, scenario.chunks),
        completion_tokens=plan.completion_tokens - count_tokens(plan.text or "") + visible,
    )


def example_of(schema: Any, question: str, depth: int) -> Any:
    """A value the JSON Schema accepts (types, enums, required properties; not formats)."""
    if not isinstance(schema, dict):
        return None
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return example_of(options[0], question, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _example_of_type(kind, schema, question, depth)


def _example_of_type(kind: Any, schema: dict[str, Any], question: str, depth: int) -> Any:
    if kind == "string":
        return question[:64] or "example"
    if kind in ("number", "integer"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    if kind == "array":
        return [] if depth >= MAX_DEPTH else [example_of(schema.get("items"), question, depth + 1)]
    if kind == "null":
        return None
    properties = schema.get("properties") or {}
    if depth >= MAX_DEPTH or not isinstance(properties, dict):
        return {}
    return {name: example_of(sub, question, depth + 1) for name, sub in properties.items()}
