"""Every problem a config has, gathered in one pass (issue #16): `switchboard check` and a
refused start print them all, so fixing a config takes one round, not one per problem.

`Problems` collects errors (the config cannot start) and warnings (it starts, but something is
ignored or probably wrong); `InvalidConfig` carries them out of the loader; `yaml_lines` maps a
path (`model_list[3].litellm_params`) to its line in the file, for people reading the report.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from broker.config.errors import ConfigError

# One step of a path: `.key`, `key` at the start, `[3]`, or msgspec's `[...]` (a dict value).
_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+|\.\.\.)\]")


class Problems:
    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigError] = []

    def error(self, exc: ConfigError) -> None:
        self.errors.append(exc)

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(ConfigError(path, message))

    def covers(self, path: str) -> bool:
        """Whether an error already recorded lies at or inside `path`: a key dropped for its
        own error makes its parent "miss a required key", a follow-on nobody needs to read."""
        return any(
            e.path == path or e.path.startswith((f"{path}.", f"{path}[")) or not path
            for e in self.errors
        )


class InvalidConfig(ConfigError):
    """A config that cannot start, with every error and warning found; behaves as its first
    error for callers that know only `ConfigError`."""

    def __init__(self, errors: list[ConfigError], warnings: list[ConfigError]) -> None:
        super().__init__(errors[0].path, errors[0].message)
        self.errors = tuple(errors)
        self.warnings = tuple(warnings)


def steps(path: str) -> list[str | int | None]:
    """`a.b[2][...]` -> ["a", "b", 2, None]; None is a dict value msgspec does not name."""
    out: list[str | int | None] = []
    for match in _STEP.finditer(path):
        key, index = match.groups()
        if key is not None:
            out.append(key)
        else:
            out.append(None if index == "..." else int(index))
    return out


def drop(tree: Any, path: str) -> bool:
    """Remove the deepest mapping key on `path` that can be reached; False if none can.

    Deleting a key never renumbers a list, so later errors keep their paths."""
    route = steps(path)
    reachable = route[: route.index(None)] if None in route else route
    keys = [i for i, step in enumerate(reachable) if isinstance(step, str)]
    if not keys:
        return False
    node = tree
    for step in reachable[: keys[-1]]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return False
    if not isinstance(node, dict) or reachable[keys[-1]] not in node:
        return False
    del node[reachable[keys[-1]]]
    return True


def yaml_lines(text: str) -> dict[str, int]:
    """Path -> 1-based line of every key and list item in a YAML document ({} if unparsable)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def visit(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = f"{path}.{key.value}" if path else str(key.value)
                lines[child] = key.start_mark.line + 1
                visit(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = f"{path}[{i}]"
                lines[child] = item.start_mark.line + 1
                visit(item, child)

    if root is not None:
        visit(root, "")
    return lines


def line_of(path: str, lines: dict[str, int]) -> int | None:
    """The line of `path`, or of its nearest ancestor the file spells out."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[: max(cut, 0)]
    return None


def describe(problem: ConfigError, lines: dict[str, int]) -> str:
    line = line_of(problem.path, lines)
    where = problem.path or "(the file)"
    if line is not None:
        where = f"{where} (line {line})"
    return f"{where}: {problem.message}"
