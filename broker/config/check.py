"""`switchboard check`: the report on a config file, as `up` would find it, without Redis, a
database or the network (issue #16). `up`, `serve` and `worker` print the same report when
a config stops them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from broker.config.errors import ConfigError
from broker.config.loader import Config, load_config
from broker.config.problems import InvalidConfig, describe, line_of, yaml_lines

# The exit status when `up` would not start (argparse's own usage errors use it too).
EXIT_INVALID = 2


def check_config(path: Path, environ: Mapping[str, str]) -> tuple[int, list[str]]:
    """The exit status and the report's lines: every problem, then a one-line summary."""
    try:
        config = load_config(path, environ)
    except ConfigError as exc:
        return EXIT_INVALID, report_failure(exc, path)
    warnings = [ConfigError(p, m) for p, m in config.warnings]
    lines = _problem_lines([], warnings, _lines_of(path))
    groups = len(config.deployments)
    deployments = sum(len(group) for group in config.deployments.values())
    lines.append(
        f"{path}: OK, `switchboard up` would start: {_count(groups, 'model group')}, "
        f"{_count(deployments, 'deployment')}, {_count(len(warnings), 'warning')}"
    )
    return 0, lines


def report_failure(exc: ConfigError, path: Path | None) -> list[str]:
    """Every problem in a config that cannot start, and a summary naming how many."""
    errors = list(exc.errors) if isinstance(exc, InvalidConfig) else [exc]
    warnings = list(exc.warnings) if isinstance(exc, InvalidConfig) else []
    lines = _problem_lines(errors, warnings, _lines_of(path) if path else {})
    name = str(path) if path else "config"
    lines.append(
        f"{name}: invalid, `switchboard up` would not start: "
        f"{_count(len(errors), 'error')}, {_count(len(warnings), 'warning')}"
    )
    return lines


def _problem_lines(
    errors: list[ConfigError], warnings: list[ConfigError], lines: dict[str, int]
) -> list[str]:
    # In file order, errors first: read top to bottom, fix top to bottom.
    def by_line(problems: list[ConfigError]) -> list[ConfigError]:
        return sorted(problems, key=lambda p: line_of(p.path, lines) or 0)

    return [f"error: {describe(e, lines)}" for e in by_line(errors)] + [
        f"warning: {describe(w, lines)}" for w in by_line(warnings)
    ]


def _lines_of(path: Path) -> dict[str, int]:
    try:
        return yaml_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


__all__ = ["EXIT_INVALID", "Config", "check_config", "report_failure"]
