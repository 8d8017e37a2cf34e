"""The config: a LiteLLM proxy `config.yaml`, loaded once into typed Structs.

- `loader`: the root `Config` and the one loader (`load_config`, `load_config_text`)
- `tree`: the walk over the YAML tree (ignored LiteLLM keys, `os.environ/` references)
- `env`: `environment_variables` over the process environment
- `deployments`: each model group's Deployments, built from `model_list`
- `errors`: `ConfigError`, naming the path of what is wrong

The sections' Structs live with the code that consumes them (`workers/settings/`).
"""

from broker.config.errors import ConfigError
from broker.config.loader import (
    DEMO_MASTER_KEY_ENV,
    DEMO_UPSTREAM_ENV,
    Config,
    load_config,
    load_config_text,
    load_demo_config,
)

__all__ = [
    "DEMO_MASTER_KEY_ENV",
    "DEMO_UPSTREAM_ENV",
    "Config",
    "ConfigError",
    "load_config",
    "load_config_text",
    "load_demo_config",
]
