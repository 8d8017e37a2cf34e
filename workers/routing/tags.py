"""Tag-based routing (LiteLLM's `router_settings.enable_tag_filtering`, issue #16).

A deployment's `litellm_params.tags` reserve it: a request carrying tags (`tags`, or
`metadata.tags`) goes only to deployments with one of them (all of them, when
`tag_filtering_match_any` is false), else to the deployments tagged `default`; with neither,
it is refused rather than sent to another team's deployment. An untagged request goes to the
`default`-tagged deployments when there are any, else to every deployment, as LiteLLM does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.errors import InvalidRequest

DEFAULT_TAG = "default"
# A request's tags beyond this many are ignored for routing (bounded work per attempt).
MAX_REQUEST_TAGS = 64


def request_tags(tags: Any, metadata: Any) -> tuple[str, ...]:
    """The request's routing tags: its `tags` field and its `metadata.tags`, strings only."""
    found: list[str] = []
    for source in (tags, metadata.get("tags") if isinstance(metadata, dict) else None):
        if isinstance(source, list):
            found += [tag for tag in source if isinstance(tag, str)]
    return tuple(dict.fromkeys(found))[:MAX_REQUEST_TAGS]


def tagged_indices(
    group: str,
    deployment_tags: Sequence[Sequence[str]],
    tags: Sequence[str],
    *,
    match_any: bool,
) -> list[int]:
    """The positions of the deployments a request with `tags` may use."""
    defaults = [i for i, own in enumerate(deployment_tags) if DEFAULT_TAG in own]
    if not tags:
        return defaults or list(range(len(deployment_tags)))
    wanted = set(tags)
    matching = [
        i
        for i, own in enumerate(deployment_tags)
        if (wanted & set(own) if match_any else wanted <= set(own))
    ]
    if matching or defaults:
        return matching or defaults
    raise InvalidRequest(
        f"no deployment of model `{group}` carries the request's tags "
        f"({', '.join(sorted(wanted))}) and none is tagged `{DEFAULT_TAG}`",
        param="tags",
        code="no_deployment_for_tags",
    )
