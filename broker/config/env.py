"""Environment references in a config: `os.environ/NAME`, resolved once, at load.

The environment is the process's, overlaid with the config's own `environment_variables`
(LiteLLM sets those before reading the rest). Nothing here writes to `os.environ`: the
overlaid mapping is passed to whoever needs it (provider credential lookup).
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.config.errors import ConfigError
from workers.deployment import Secret

ENV_PREFIX = "os.environ/"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(ENV_PREFIX)


def referenced_name(reference: str, path: str) -> str:
    name = reference[len(ENV_PREFIX) :].strip()
    if not name:
        raise ConfigError(path, f"`{ENV_PREFIX}` must be followed by a variable name")
    return name


def lookup(environ: Mapping[str, str], name: str, path: str) -> Secret:
    """The variable's value, which no repr, log line or error message will show."""
    value = environ.get(name)
    if value is None:
        raise ConfigError(
            path,
            f"environment variable {name} is not set "
            "(export it, or set it under environment_variables)",
        )
    return Secret(value)


def overlay(base: Mapping[str, str], variables: object) -> dict[str, str]:
    """`base` with the config's `environment_variables` section set over it."""
    environ = dict(base)
    if variables is None:
        return environ
    if not isinstance(variables, dict):
        raise ConfigError("environment_variables", "expected a mapping of names to values")
    for name, value in variables.items():
        path = f"environment_variables.{name}"
        if not isinstance(name, str):
            raise ConfigError(path, "variable names must be strings")
        if is_reference(value):
            value = lookup(base, referenced_name(value, path), path)
        elif isinstance(value, bool):
            # LiteLLM stores str(value); YAML `true` becomes "True".
            value = str(value)
        elif not isinstance(value, str | int | float):
            raise ConfigError(path, "expected a string or a number")
        environ[name] = value if isinstance(value, Secret) else Secret(str(value))
    return environ


def parse_number(text: str, kind: type[int] | type[float]) -> int | float | None:
    """An environment value as a number, or None if it does not read as one."""
    try:
        return kind(text.strip())
    except ValueError:
        return None


def parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None
