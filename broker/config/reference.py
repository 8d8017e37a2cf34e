"""docs/config.md, generated from the typed config so it cannot drift (issue #16): every
section's keys with type, default and meaning (the comment above each field), then the
LiteLLM keys each section accepts and ignores. The compatibility table in the README points
here. `python -m broker.config.reference > docs/config.md` rewrites it;
tests/broker/test_config_reference.py fails when it is stale.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from collections.abc import Iterator

import msgspec.inspect as mi

from broker.config.loader import Config
from workers.settings.section import Section

TITLE = "# Config reference"
INTRO = """\
Generated from the typed config (`python -m broker.config.reference > docs/config.md`;
a test fails when this file is stale). A LiteLLM proxy `config.yaml` loads unchanged: every
key below is implemented; the keys under "accepted, ignored" in each section are LiteLLM's,
loaded and reported once as `not implemented by Switchboard, ignored` (a name ending in `*` is
a family); any other key is an error naming the key probably meant, except in `model_info`,
which is free-form as in LiteLLM (unknown keys are kept and shown by `/model/info`).
`switchboard check --config F` lists all of it for a given file. `os.environ/NAME` works
anywhere a value goes."""


def render() -> str:
    parts = [TITLE, "", INTRO, ""]
    for path, cls in _sections(Config, ""):
        parts += _section(path, cls)
    return "\n".join(parts).rstrip() + "\n"


def _sections(cls: type[Section], path: str) -> Iterator[tuple[str, type[Section]]]:
    """Each Section reachable from `cls`, depth first, with its path in the YAML tree."""
    yield path or "(top level)", cls
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    for field in info.fields:
        if field.encode_name in cls.derived_fields:
            continue
        for child, suffix in _section_types(field.type):
            yield from _sections(child, f"{path}.{field.encode_name}{suffix}".lstrip("."))


def _section_types(t: mi.Type) -> Iterator[tuple[type[Section], str]]:
    while isinstance(t, mi.Metadata):
        t = t.type
    members = t.types if isinstance(t, mi.UnionType) else (t,)
    for member in members:
        if isinstance(member, mi.StructType) and issubclass(member.cls, Section):
            yield member.cls, ""
        elif isinstance(member, mi.ListType) and isinstance(member.item_type, mi.StructType):
            if issubclass(member.item_type.cls, Section):
                yield member.item_type.cls, "[]"
        elif isinstance(member, mi.DictType) and isinstance(member.value_type, mi.UnionType):
            for inner in member.value_type.types:
                if isinstance(inner, mi.StructType) and issubclass(inner.cls, Section):
                    yield inner.cls, ".<name>"


def _section(path: str, cls: type[Section]) -> list[str]:
    lines = [f"## `{path}`", ""]
    doc = inspect.getdoc(cls)
    if doc and doc != inspect.getdoc(Section):
        lines += [doc, ""]
    rows = list(_fields(cls))
    if rows:
        lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        lines += [f"| `{n}` | `{t}` | {d} | {m} |" for n, t, d, m in rows]
        lines.append("")
    ignored = sorted(cls.litellm_ignored)
    if ignored:
        names = ", ".join(f"`{name}`" for name in ignored)
        lines += [f"LiteLLM keys accepted, ignored: {names}.", ""]
    if cls.passthrough_keys:
        lines += [
            "Any OpenAI request parameter (`temperature`, `max_tokens`, `top_p`, ..., and "
            "`extra_body`) is a default for requests that do not set it.",
            "",
        ]
    return lines


def _fields(cls: type[Section]) -> Iterator[tuple[str, str, str, str]]:
    hidden = cls.derived_fields
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, Section) and klass is not Section:
            yield from _class_fields(klass, hidden)


def _class_fields(klass: type, hidden: frozenset[str]) -> Iterator[tuple[str, str, str, str]]:
    source = textwrap.dedent(inspect.getsource(klass))
    lines = source.splitlines()
    tree = ast.parse(source).body[0]
    assert isinstance(tree, ast.ClassDef)
    for node in tree.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        kind = ast.unparse(node.annotation)
        if name in hidden or kind.startswith("ClassVar"):
            continue
        default = f"`{ast.unparse(node.value)}`" if node.value is not None else "required"
        yield name, kind.replace("|", "\\|"), default.replace("|", "\\|"), _comment(lines, node)


def _comment(lines: list[str], node: ast.AnnAssign) -> str:
    """The comment lines right above a field, and its trailing comment, as one sentence."""
    found: list[str] = []
    index = node.lineno - 2
    while index >= 0 and lines[index].strip().startswith("#"):
        found.insert(0, lines[index].strip().lstrip("#").strip())
        index -= 1
    line = lines[node.lineno - 1]
    if "  # " in line:
        found.append(line.split("  # ", 1)[1].strip())
    return " ".join(found).replace("|", "\\|")


if __name__ == "__main__":
    sys.stdout.write(render())
