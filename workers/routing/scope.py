"""Which model groups a caller may reach: the one check every route to a group passes.

A key's scope is a set of model groups (None: every group). The front door checks the
group a request names (and its alias's group) with it; the router checks every fallback
with it, whichever rule chose the fallback (fallbacks, context_window_fallbacks,
content_policy_fallbacks, default_fallbacks). Wildcard and tag routes (issue #16) must ask
`may_reach` too, so that no route ever serves a caller from a group outside its key's scope
(issue #13, item 6).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping

from workers.routing.wildcards import WILDCARD


def may_reach(scope: Collection[str] | None, group: str) -> bool:
    """Whether a caller whose key allows `scope` may be served by model group `group`."""
    return scope is None or allows(scope, group)


def scope_of(models: Collection[str] | None, aliases: Mapping[str, str]) -> frozenset[str] | None:
    """The model groups a key's model list reaches: each listed group (or pattern), and the
    group each listed (or matched) alias names. None (no list) reaches every group."""
    if models is None:
        return None
    if not any(WILDCARD in name for name in models):
        return frozenset(models) | frozenset(aliases[name] for name in models if name in aliases)
    return frozenset(models) | frozenset(
        group for alias, group in aliases.items() if allows(models, alias)
    )


def allows(models: Collection[str], name: str) -> bool:
    """Whether a key's model list allows the model (or group) `name`: listed as it is, or
    matched by an entry with `*` (LiteLLM's key wildcards, `openai/*`, `claude-*`: a `*`
    matches any text, none included)."""
    if name in models:
        return True
    return any(_pattern(entry).fullmatch(name) is not None for entry in models if WILDCARD in entry)


@functools.lru_cache(maxsize=1024)
def _pattern(entry: str) -> re.Pattern[str]:
    # Only `*` is special: the rest of the entry is literal text (dots included).
    return re.compile(".*".join(re.escape(part) for part in entry.split(WILDCARD)), re.DOTALL)
