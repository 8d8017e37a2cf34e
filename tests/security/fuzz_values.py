"""Values for the fuzz test: hypothesis strategies derived from a JSON schema (the OpenAPI
document's components), the hostile values a gateway is known to mishandle, and a serializer
that can put what Python's json module cannot write (1e400, NaN, nesting 5,000 deep) into a
body verbatim."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

Schema = dict[str, Any]


@dataclass(frozen=True)
class Raw:
    """JSON text placed in a body as it is: a number or nesting json.dumps cannot produce."""

    text: str


# Numbers past every bound a provider or a 64-bit field has; the first lines are what the
# adversarial pass of issue #13 found answered with a 500.
HOSTILE_NUMBERS: list[Any] = [
    2e16,
    1e300,
    -1e300,
    2**64,
    2**64 + 1,
    2**63,
    -(2**63) - 1,
    2**53 + 1,
    10**30,
    1.7976931348623157e308,
    1e-300,
    5e-324,
    -0.0,
    0,
    -1,
    0.5,
    Raw("1e400"),
    Raw("-1e400"),
    Raw("1e-400"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    Raw("1" + "0" * 5000),
    Raw("-0"),
    Raw("1E+2"),
    True,
    "12",
    None,
]
WRONG_TYPES: list[Any] = [[], {}, "s", "", 1, 1.5, True, None, [[]], {"": None}, [None], {"a": []}]
NESTING_DEPTHS = [32, 64, 65, 128, 300, 1000, 5000]
# Strings that have broken parsers, loggers and header handling elsewhere.
HOSTILE_STRINGS = [
    "",
    " ",
    "\u0000",
    "a\u0000b",
    "\r\n",
    "\u202e\u0645",
    "\U0001f600" * 8,
    "%s%n%x",
    "{{7*7}}",
    "../../../etc/passwd",
    "\\",
    '"',
    "null",
    "x" * 10_000,
]
# JSON escapes Python's str cannot carry to UTF-8 (lone surrogates), and control escapes.
HOSTILE_STRING_LITERALS = ['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"\\ud83d"', '"\\uFFFF"']


def nesting(depth: int, shape: str) -> Raw:
    if shape == "array":
        return Raw("[" * depth + "]" * depth)
    if shape == "object":
        return Raw('{"a":' * depth + "1" + "}" * depth)
    return Raw('[{"a":' * (depth // 2) + "1" + "}]" * (depth // 2))


NESTED = st.builds(
    nesting, st.sampled_from(NESTING_DEPTHS), st.sampled_from(["array", "object", "mixed"])
)
HOSTILE_NUMBER = st.sampled_from(HOSTILE_NUMBERS)
HOSTILE_VALUE = st.one_of(
    HOSTILE_NUMBER,
    st.sampled_from(WRONG_TYPES),
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(HOSTILE_STRING_LITERALS).map(Raw),
    NESTED,
)

TEXT = st.text(max_size=24)


def one_in(n: int) -> SearchStrategy[bool]:
    """True about once in `n` draws (hypothesis's small integers lean towards 0; a sample
    from a list does not)."""
    return st.sampled_from([True] + [False] * (n - 1))


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-1000, max_value=100_000),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
JSON_OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=4)


class SchemaStrategies:
    """Strategies for values of a schema as msgspec emits it ($ref, allOf, anyOf, enum, type,
    properties/required, items). `overrides` replaces the values of named properties (the
    model names a config serves, URLs that stay on this machine)."""

    def __init__(self, components: dict[str, Schema], overrides: dict[str, SearchStrategy[Any]]):
        self.components = components
        self.overrides = overrides

    def resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def properties(self, schema: Schema) -> tuple[dict[str, Schema], set[str]]:
        """The properties and required names of an object schema, allOf merged."""
        schema = self.resolve(schema)
        if "allOf" in schema:
            merged: dict[str, Schema] = {}
            required: set[str] = set()
            for part in schema["allOf"]:
                props, names = self.properties(part)
                merged.update(props)
                required |= names
            return merged, required
        return dict(schema.get("properties", {})), set(schema.get("required", []))

    def value(self, schema: Schema, name: str | None = None) -> SearchStrategy[Any]:
        if name is not None and name in self.overrides:
            return self.overrides[name]
        schema = self.resolve(schema)
        if "anyOf" in schema:
            return st.one_of([self.value(option) for option in schema["anyOf"]])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        kind = schema.get("type")
        if kind == "object" or "allOf" in schema:
            props, required = self.properties(schema)
            if not props:
                return JSON_OBJECTS
            return st.fixed_dictionaries(
                {key: self.value(props[key], key) for key in sorted(required)},
                optional={
                    key: self.value(props[key], key) for key in sorted(set(props) - required)
                },
            )
        if kind == "array":
            return st.lists(self.value(schema.get("items", {})), max_size=3)
        return _scalar(kind, schema)

    def is_numeric(self, schema: Schema) -> bool:
        schema = self.resolve(schema)
        options = schema.get("anyOf", [schema])
        return any(self.resolve(o).get("type") in ("integer", "number") for o in options)


def _scalar(kind: str | None, schema: Schema) -> SearchStrategy[Any]:
    if kind == "string":
        return TEXT
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.integers(min_value=low, max_value=high) | st.integers(-5, 300)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False) | st.floats(0, 2)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return JSON_VALUES


def serialize(value: Any) -> bytes:
    """JSON bytes of `value`, with each Raw written verbatim where it stands."""
    literals: list[str] = []

    def swap(item: Any) -> Any:
        if isinstance(item, Raw):
            literals.append(item.text)
            return f"\ue000raw{len(literals) - 1}\ue000"
        if isinstance(item, dict):
            return {key: swap(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [swap(inner) for inner in item]
        return item

    text = json.dumps(swap(value), ensure_ascii=False)
    for index, literal in enumerate(literals):
        text = text.replace(f'"\ue000raw{index}\ue000"', literal)
    return text.encode("utf-8", "surrogatepass")
