"""Whether a new batch goes to its provider's own batch API (issue #20's native mode), and
to which deployment: decided once, when the batch is created, and kept in its record.

A batch is native when every line's model group has a deployment with
`model_info.batch_mode: native` and they are one and the same deployment (one provider
batch), and the provider's batch API takes the batch's endpoint. Any other batch runs on
Switchboard's own batch lane, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from broker.batches.records import NativeState
from workers.deployment import Deployment

# The endpoints each provider's batch API runs (Anthropic's takes Messages requests:
# /v1/messages lines as they are, chat lines translated: native_anthropic.py).
NATIVE_ENDPOINTS: Mapping[str, frozenset[str]] = {
    "openai": frozenset({"/v1/chat/completions", "/v1/embeddings", "/v1/responses"}),
    "anthropic": frozenset({"/v1/chat/completions", "/v1/messages"}),
}


def native_deployment(deployments: Sequence[Deployment]) -> Deployment | None:
    """The group's first deployment marked native, if any."""
    return next((d for d in deployments if d.native_batches), None)


def choose(
    deployments: Mapping[str, Sequence[Deployment]], endpoint: str, groups: Mapping[str, str]
) -> NativeState | None:
    """The native hand-over for a batch whose lines name `groups` (group -> a model name
    that resolved to it); None: the batch runs on the batch lane."""
    chosen: Deployment | None = None
    for group in groups:
        found = native_deployment(deployments.get(group, ()))
        if found is None or (chosen is not None and found.label != chosen.label):
            return None
        chosen = found
    if chosen is None or endpoint not in NATIVE_ENDPOINTS.get(chosen.provider, ()):
        return None
    group, model = next(iter(groups.items()))
    return NativeState(provider=chosen.provider, group=group, deployment=chosen.label, model=model)


def find_deployment(
    deployments: Mapping[str, Sequence[Deployment]], state: NativeState
) -> Deployment | None:
    """The deployment a native batch was handed to, as the config has it now (its key may
    have been rotated); None once it is gone or no longer native."""
    for deployment in deployments.get(state.group, ()):
        if deployment.label == state.deployment and deployment.native_batches:
            return deployment
    return None
