"""The config sections the workers consume, as LiteLLM's proxy `config.yaml` spells them.

`broker/config/loader.py` composes them into the root `Config` and is the only loader. Each Struct
lists, in `litellm_ignored`, the LiteLLM keys it accepts but does not implement: the loader
warns about those and refuses any other unknown key.
"""

from workers.settings.models import (
    DEPLOYMENT_OPTION_KEYS,
    REQUEST_PARAM_KEYS,
    LiteLLMParams,
    ModelEntry,
    ModelInfo,
)
from workers.settings.routing import (
    AllowedFailsPolicy,
    FallbackRules,
    LiteLLMSettings,
    ModelGroupAlias,
    RetryPolicy,
    RouterSettings,
    RoutingStrategy,
    RoutingStrategyArgs,
)
from workers.settings.switchboard import SwitchboardSettings

__all__ = [
    "DEPLOYMENT_OPTION_KEYS",
    "REQUEST_PARAM_KEYS",
    "AllowedFailsPolicy",
    "FallbackRules",
    "LiteLLMParams",
    "LiteLLMSettings",
    "ModelEntry",
    "ModelGroupAlias",
    "ModelInfo",
    "RetryPolicy",
    "RouterSettings",
    "RoutingStrategy",
    "RoutingStrategyArgs",
    "SwitchboardSettings",
]
