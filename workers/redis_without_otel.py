"""redis-py (7.1 and later) imports the OpenTelemetry SDK's metrics when its own modules load,
whenever the SDK is installed, for redis-py's own metrics, which Switchboard never turns on.
That put ~8 MiB in every front door and worker with the `otel` extra installed, configured
or not (issue #22's memory target). This import hook loads redis-py's `observability`
modules as if OpenTelemetry were absent; Switchboard's `otel` callback (workers/hooks/
tracing.py) still imports the SDK itself, when one is configured."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

REDIS_OBSERVABILITY = "redis.observability"
OPENTELEMETRY = "opentelemetry"


class _AsIfAbsent(importlib.abc.Loader):
    """Runs a module with `import opentelemetry` failing, as it does where it is not installed."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if OPENTELEMETRY in sys.modules:  # loaded already: nothing left to save
            self.loader.exec_module(module)
            return
        sys.modules[OPENTELEMETRY] = None  # type: ignore[assignment]  # how Python blocks an import
        try:
            self.loader.exec_module(module)
        finally:
            if OPENTELEMETRY in sys.modules and sys.modules[OPENTELEMETRY] is None:
                del sys.modules[OPENTELEMETRY]


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not name.startswith(REDIS_OBSERVABILITY + "."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _AsIfAbsent(spec.loader)
        return spec


def install() -> None:
    """Before redis-py is imported; once per process is enough, more is harmless."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
