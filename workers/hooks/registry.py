"""`Callbacks`: which callbacks run, as LiteLLM's three lists hold them, and how a list's
entries (functions, `CustomLogger` objects, built-in names, import paths) become callables.

A string is a built-in's name (`jsonl`, `webhook`, `otel`, `langfuse`) or a Python import
path to a function or a `CustomLogger` instance (`custom_callbacks.proxy_handler_instance`,
as LiteLLM's proxy config names one). Each string is resolved once and kept.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from workers.hooks.custom_logger import CustomLogger

# A built-in's factory: called once, the first time a list names it.
Factory = Callable[[], CustomLogger]


class CallbackError(ValueError):
    """A callback list names something that is neither a built-in nor importable."""


class Callbacks:
    """The callbacks in force. The SDK keeps one whose lists callers assign at any time
    (`switchboard.success_callback = [...]`); the service builds one from its config."""

    def __init__(
        self,
        *,
        success_callback: list[Any] | None = None,
        failure_callback: list[Any] | None = None,
        callbacks: list[Any] | None = None,
        turn_off_message_logging: bool = False,
        builtins: dict[str, Factory] | None = None,
    ) -> None:
        self.success_callback: list[Any] = success_callback if success_callback else []
        self.failure_callback: list[Any] = failure_callback if failure_callback else []
        self.callbacks: list[Any] = callbacks if callbacks else []
        self.turn_off_message_logging = turn_off_message_logging
        self.builtins: dict[str, Factory] = dict(builtins or {})
        self._resolved: dict[str, Any] = {}

    @property
    def is_active(self) -> bool:
        return bool(self.success_callback or self.failure_callback or self.callbacks)

    def resolve(self, given: Any) -> Any:
        """A list entry as the callable or CustomLogger it names."""
        if not isinstance(given, str):
            return given
        target = self._resolved.get(given)
        if target is None:
            target = self._resolved[given] = self._load(given)
        return target

    def check(self, *, builds_builtins: bool = True) -> None:
        """Resolve every named entry now (the service, at start: a typo fails the start).
        Without `builds_builtins` (a front door, which delivers nothing itself) a built-in's
        name is only looked up: an `otel` export is not built, nor OpenTelemetry loaded."""
        for entry in (*self.success_callback, *self.failure_callback, *self.callbacks):
            if builds_builtins or not isinstance(entry, str) or entry not in self.builtins:
                self.resolve(entry)

    def loggers(self) -> list[CustomLogger]:
        """Every CustomLogger in any list, once (to close at shutdown); a built-in that was
        never built (see `check`) has nothing to close."""
        seen: dict[int, CustomLogger] = {}
        for entry in (*self.success_callback, *self.failure_callback, *self.callbacks):
            if isinstance(entry, str) and entry in self.builtins and entry not in self._resolved:
                continue
            target = self.resolve(entry)
            if isinstance(target, CustomLogger):
                seen[id(target)] = target
        return list(seen.values())

    def _load(self, name: str) -> Any:
        factory = self.builtins.get(name)
        if factory is not None:
            return factory()
        return import_target(name)


def import_target(path: str) -> Any:
    """`package.module.attribute` imported; a CallbackError says why it cannot be."""
    module_name, _, attribute = path.rpartition(".")
    if not module_name:
        raise CallbackError(
            f"callback {path!r} is neither a built-in nor an import path "
            "(`module.attribute`, e.g. custom_callbacks.proxy_handler_instance)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CallbackError(f"callback {path!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise CallbackError(f"callback {path!r}: {module_name} has no {attribute!r}") from None
    if not (callable(target) or isinstance(target, CustomLogger)):
        raise CallbackError(f"callback {path!r} is neither a function nor a CustomLogger")
    return target
