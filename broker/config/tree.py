"""A walk over the parsed YAML tree, guided by the Structs it will become.

It does what msgspec's decoding cannot, before msgspec sees the tree:
- sorts every key: a field, a LiteLLM key we accept but ignore (recorded, warned about
  once loaded), or a typo (refused, with the key probably meant);
- records every problem and drops the key it sits under, so one pass finds them all;
- resolves `os.environ/NAME` references, reading a number or flag where the field wants one
  (environment values are always strings), and remembers which paths came from where;
- smooths YAML 1.1 quirks (an unquoted `api_version: 2024-02-01` parses as a date).
Type checking proper is left to `msgspec.convert`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
from collections.abc import Mapping
from typing import Any

import msgspec.inspect as mi

from broker.config.env import is_reference, lookup, parse_bool, parse_number, referenced_name
from broker.config.errors import ConfigError
from workers.settings.section import Section

_TEXT = (mi.StrType, mi.CustomType, mi.AnyType)


class TreeWalk:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        # Paths of LiteLLM keys Switchboard does not implement, in document order.
        self.ignored: list[str] = []
        # Path -> environment variable read there (for error messages).
        self.env_refs: dict[str, str] = {}
        # Every key refused, in document order; the key is left out of the tree.
        self.errors: list[ConfigError] = []

    def value(self, raw: Any, t: mi.Type, path: str) -> Any:
        t = _unwrap(t)
        if is_reference(raw):
            return self._reference(raw, t, path)
        if isinstance(raw, dict):
            target = _member(t, (mi.StructType, mi.DictType))
            if isinstance(target, mi.StructType):
                return self.struct(raw, target, path)
            if isinstance(target, mi.DictType):
                value_type = target.value_type
                return {k: self.value(v, value_type, _key_path(path, k)) for k, v in raw.items()}
        elif isinstance(raw, list):
            target = _member(t, (mi.ListType,))
            if isinstance(target, mi.ListType):
                return [self.value(v, target.item_type, f"{path}[{i}]") for i, v in enumerate(raw)]
        if isinstance(t, mi.AnyType):
            return self.untyped(raw, path)
        # A mismatch (a list where a number belongs) is msgspec's to report.
        return self._scalar(raw, t, path)

    def struct(self, raw: dict[Any, Any], t: mi.StructType, path: str) -> dict[str, Any]:
        cls = t.cls
        assert issubclass(cls, Section), cls
        fields = {f.encode_name: f for f in t.fields if f.encode_name not in cls.derived_fields}
        out: dict[str, Any] = {}
        for key, raw_value in raw.items():
            key_path = _key_path(path, key)
            try:
                self._key(cls, fields, out, key, raw_value, key_path)
            except ConfigError as exc:
                self.errors.append(exc)
        return out

    def _key(
        self,
        cls: type[Section],
        fields: dict[str, mi.Field],
        out: dict[str, Any],
        key: Any,
        raw_value: Any,
        key_path: str,
    ) -> None:
        if not isinstance(key, str):
            raise ConfigError(key_path, "keys must be strings")
        if key in fields:
            out[key] = self.value(raw_value, fields[key].type, key_path)
        elif key in cls.passthrough_keys:
            out[key] = self.untyped(raw_value, key_path)
        elif _is_ignored(key, cls.litellm_ignored):
            # Not resolved either: an unset variable behind an ignored key must not
            # stop a LiteLLM config from starting.
            self.ignored.append(key_path)
        elif cls.free_form_field:
            # LiteLLM keeps whatever else this section holds (model_info is free-form).
            extra = out.setdefault(cls.free_form_field, {})
            extra[key] = self.untyped(raw_value, key_path)
        else:
            known = [*fields, *cls.passthrough_keys, *cls.litellm_ignored]
            raise ConfigError(key_path, _unknown_key(key, known))

    def untyped(self, raw: Any, path: str) -> Any:
        """Any value: only its environment references are resolved."""
        if is_reference(raw):
            return self._reference(raw, mi.AnyType(), path)
        if isinstance(raw, dict):
            return {k: self.untyped(v, _key_path(path, k)) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.untyped(v, f"{path}[{i}]") for i, v in enumerate(raw)]
        return raw

    def _reference(self, raw: str, t: mi.Type, path: str) -> Any:
        name = referenced_name(raw, path)
        text = lookup(self.environ, name, path)
        self.env_refs[path] = name
        kinds = _members(t)
        if any(isinstance(k, _TEXT) for k in kinds):
            return text
        literals = [k for k in kinds if isinstance(k, mi.LiteralType)]
        if literals:
            return self._scalar(text, t, path)
        for kind in kinds:
            parsed = _parse(text, kind)
            if parsed is not None:
                return parsed
        wanted = " | ".join(_kind_name(k) for k in kinds if not isinstance(k, mi.NoneType))
        raise ConfigError(path, f"environment variable {name} does not hold {wanted}")

    def _scalar(self, raw: Any, t: mi.Type, path: str) -> Any:
        kinds = _members(t)
        if isinstance(raw, dt.date) and any(isinstance(k, _TEXT) for k in kinds):
            return raw.isoformat()
        literals = [v for k in kinds if isinstance(k, mi.LiteralType) for v in k.values]
        if literals and isinstance(raw, str) and raw not in literals:
            if not any(isinstance(k, _TEXT) for k in kinds):
                choices = ", ".join(str(v) for v in literals)
                raise ConfigError(path, f"expected one of: {choices}")
        return raw


def _unwrap(t: mi.Type) -> mi.Type:
    while isinstance(t, mi.Metadata):
        t = t.type
    return t


def _members(t: mi.Type) -> list[mi.Type]:
    t = _unwrap(t)
    if isinstance(t, mi.UnionType):
        return [_unwrap(m) for m in t.types]
    return [t]


def _member(t: mi.Type, kinds: tuple[type[mi.Type], ...]) -> mi.Type | None:
    for member in _members(t):
        if isinstance(member, kinds):
            return member
    return None


def _parse(text: str, kind: mi.Type) -> Any:
    if isinstance(kind, mi.BoolType):
        return parse_bool(text)
    if isinstance(kind, mi.IntType):
        return parse_number(text, int)
    if isinstance(kind, mi.FloatType):
        return parse_number(text, float)
    return None


def _kind_name(kind: mi.Type) -> str:
    return {mi.BoolType: "a boolean", mi.IntType: "an int", mi.FloatType: "a number"}.get(
        type(kind), "a value of this type"
    )


def _key_path(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_ignored(key: str, ignored: frozenset[str]) -> bool:
    if key in ignored:
        return True
    return any(name.endswith("*") and fnmatch.fnmatchcase(key, name) for name in ignored)


def _unknown_key(key: str, known: list[str]) -> str:
    candidates = [k for k in known if not k.endswith("*")]
    close = difflib.get_close_matches(key, candidates, n=1)
    hint = f"; did you mean `{close[0]}`?" if close else " (docs/config.md lists every key)"
    return f"unknown key{hint}"
