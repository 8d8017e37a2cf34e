"""`ConfigError`: why a config cannot start, named by its path in the YAML tree.

A message names where (`model_list[2].litellm_params.rpm`) and what was expected, never the
value found there: a misplaced API key must not end up in a log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

# msgspec writes `<message> - at `$.a.b[2]``, or `- at `key` in `$.a`` for a bad dict key.
_LOCATION = re.compile(r" - at `(?:(?P<key>key)` in `)?\$\.?(?P<path>[^`]*)`$")
# msgspec speaks JSON; a config author reads YAML.
_JSON_NAMES = {"object": "mapping", "array": "list", "null": "null"}
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class ConfigError(ValueError):
    """A config that cannot run; `path` is where in the YAML tree (`""` for the document)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def from_validation_error(
    exc: msgspec.ValidationError,
    env_refs: Mapping[str, str] | None = None,
    *,
    prefix: str = "",
) -> ConfigError:
    """Reformat msgspec's error for a value found at `prefix`.

    `env_refs` maps paths to the environment variables read there."""
    text = str(exc)
    match = _LOCATION.search(text)
    inner = match["path"] if match else ""
    path = f"{prefix}.{inner}" if prefix and inner else prefix or inner
    message = _readable(text[: match.start()] if match else text)
    if match and match["key"]:
        message = f"a key here: {message}"
    name = (env_refs or {}).get(path)
    if name is not None:
        message = f"{message} (from environment variable {name})"
    return ConfigError(path, message)


def _readable(message: str) -> str:
    required = re.fullmatch(r"Object missing required field `(\w+)`", message)
    if required:
        return f"missing required key `{required[1]}`"
    if message.startswith("Invalid enum value"):
        return "not one of the accepted values"
    # Never echo a value (msgspec quotes bad enum values, for one).
    message = _QUOTED.sub("this value", message)

    def type_names(found: re.Match[str]) -> str:
        alternatives = [_JSON_NAMES.get(t, t) for t in found[1].split(" | ")]
        # "expected int" says it; every optional field also takes null.
        shown = [t for t in alternatives if t != "null"] or alternatives
        return " | ".join(shown)

    message = re.sub(r"`([^`]+)`", type_names, message)
    return message[:1].lower() + message[1:]
