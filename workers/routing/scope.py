"""Which model groups a caller may reach: the one check every route to a group passes.

A key's scope is a set of model groups (None: every group). The front door checks the
group a request names (and its alias's group) with it; the router checks every fallback
with it, whichever rule chose the fallback (fallbacks, context_window_fallbacks,
content_policy_fallbacks, default_fallbacks). Wildcard and tag routes (issue #16) must ask
`may_reach` too, so that no route ever serves a caller from a group outside its key's scope
(issue #13, item 6).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def may_reach(scope: Collection[str] | None, group: str) -> bool:
    """Whether a caller whose key allows `scope` may be served by model group `group`."""
    return scope is None or group in scope


def scope_of(models: Collection[str] | None, aliases: Mapping[str, str]) -> frozenset[str] | None:
    """The model groups a key's model list reaches: each listed group, and the group each
    listed alias names. None (no list) reaches every group."""
    if models is None:
        return None
    return frozenset(models) | frozenset(aliases[name] for name in models if name in aliases)
