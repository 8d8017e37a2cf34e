"""The request fields and values the adversarial pass of issue #13 (item 5) turned into 5xx:
numbers past what a decoder or an encoder holds, and nesting past what a recursive one
survives. Each case is the field, its value as raw JSON text (`1e400` has no Python literal
that json.dumps would write) and as the Python object the SDK would be given, and the param
the 400 must name."""

from __future__ import annotations

import json
from typing import Any, NamedTuple


class Value(NamedTuple):
    text: str  # as it appears in a JSON body
    python: Any  # as an SDK caller would pass it

    @classmethod
    def number(cls, text: str) -> Value:
        return cls(text, json.loads(text))  # `1e400` loads as inf, `2**64` as an int

    def __repr__(self) -> str:
        # The Python form may nest 100,000 deep: too deep for the default repr.
        return f"Value({self.text[:40]!r})"


def deep_object(levels: int) -> Value:
    """`levels` nested objects (built without recursion: 100,000 levels must not crash us)."""
    python: Any = 1
    for _ in range(levels):
        python = {"a": python}
    return Value('{"a":' * levels + "1" + "}" * levels, python)


def deep_array(levels: int) -> Value:
    python: Any = 1
    for _ in range(levels):
        python = [python]
    return Value("[" * levels + "1" + "]" * levels, python)


class Case(NamedTuple):
    field: str
    value: Value
    param: str

    @property
    def id(self) -> str:
        shown = self.value.text if len(self.value.text) < 24 else f"{self.value.text[:12]}…"
        return f"{self.field}={shown}"


INT_2_64 = Value.number(str(2**64))
INT_2_63 = Value.number(str(2**63))
BELOW_INT64 = Value.number(str(-(2**63) - 1))
INF = Value.number("1e400")
MINUS_INF = Value.number("-1e400")
HUGE = [INT_2_64, INT_2_63, INF]
DEEP = [deep_object(65), deep_object(300), deep_object(1000), deep_array(100_000)]


def _cases(field: str, values: list[Value], param: str | None = None) -> list[Case]:
    return [Case(field, value, param or field) for value in values]


# Fields of chat requests, with the param the error names.
CHAT_CASES: list[Case] = [
    *_cases("timeout", [Value.number("2e16"), Value.number("1e300"), INF, INT_2_64]),
    *_cases("timeout", [Value.number("-1"), Value.number("0")]),
    *_cases("num_retries", [*HUGE, Value.number("-1"), Value.number("101")]),
    *_cases("priority", [*HUGE, Value.number(str(2**31)), BELOW_INT64]),
    *_cases("max_tokens", [*HUGE, Value.number(str(2**31)), Value.number("0")]),
    *_cases("max_completion_tokens", [*HUGE, Value.number(str(2**31))]),
    *_cases("seed", [*HUGE, BELOW_INT64, MINUS_INF]),
    *_cases("n", [*HUGE, Value.number("129")]),
    *_cases("top_logprobs", [INT_2_64, Value.number("21")]),
    *_cases("temperature", [INF, MINUS_INF, Value.number("1e308"), Value.number("3")]),
    *_cases("top_p", [INF, Value.number("2")]),
    *_cases("presence_penalty", [INF, Value.number("-3")]),
    *_cases("frequency_penalty", [MINUS_INF]),
    *_cases("logit_bias", [Value('{"50256": 1e400}', {"50256": float("inf")})]),
    *_cases("metadata", [*DEEP, Value('{"x": [1, -1e400]}', {"x": [1, float("-inf")]})]),
    *_cases("metadata", [Value('{"x": ' + str(2**64) + "}", {"x": 2**64})]),
    # A field the schema does not know still crosses every decoder and encoder downstream.
    *_cases("x_unknown", [*DEEP, INF, MINUS_INF, INT_2_64, Value.number("1e309")]),
    *_cases(
        "messages",
        [
            Value(
                '[{"role": "user", "content": ' + deep_array(1000).text + "}]",
                [{"role": "user", "content": deep_array(1000).python}],
            )
        ],
    ),
    *_cases(
        "tools",
        [
            Value(
                '[{"type": "function", "function": ' + deep_object(80).text + "}]",
                [{"type": "function", "function": deep_object(80).python}],
            )
        ],
    ),
    *_cases(
        "response_format",
        [
            Value(
                '{"type": "json_schema", "json_schema": {"name": "s", "schema": '
                + deep_object(70).text
                + "}}",
                {
                    "type": "json_schema",
                    "json_schema": {"name": "s", "schema": deep_object(70).python},
                },
            )
        ],
    ),
]

EMBEDDING_CASES: list[Case] = [
    *_cases("dimensions", [*HUGE, Value.number("0"), Value.number(str(2**31))]),
    *_cases("timeout", [Value.number("2e16"), INF]),
    *_cases("num_retries", [INT_2_64]),
    *_cases("x_unknown", [deep_object(300), INF]),
]


def chat_body(model: str, case: Case) -> bytes:
    """A chat request that is fine but for `case` (raw bytes: the value is raw JSON)."""
    hello = '"messages": [{"role": "user", "content": "hi"}]'
    return _object(f'"model": {json.dumps(model)}, {hello}', case)


def embedding_body(model: str, case: Case) -> bytes:
    return _object(f'"model": {json.dumps(model)}, "input": "hi"', case)


def _object(members: str, case: Case) -> bytes:
    return ("{" + members + f", {json.dumps(case.field)}: " + case.value.text + "}").encode()
