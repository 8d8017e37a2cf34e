"""Loading LiteLLM proxy configs: typed sections, deployments, and every way a config fails."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from broker.config.errors import ConfigError
from broker.config.loader import (
    Config,
    GeneralSettings,
    load_config,
    load_config_text,
    load_demo_config,
)
from workers.deployment import Secret
from workers.settings import (
    LiteLLMParams,
    ModelGroupAlias,
    RetryPolicy,
    RouterSettings,
    SwitchboardSettings,
)

SECRETS = {
    "OPENAI_API_KEY": "sk-openai-very-secret",
    "AZURE_KEY": "az-very-secret",
    "MASTER_KEY": "sk-master-very-secret",
    "AWS_SECRET": "aws-very-secret",
    "REDIS_PASSWORD": "redis-very-secret",
    "DATABASE_URL": "postgresql://litellm:db-very-secret@db:5432/litellm",
}

LITELLM_CONFIG = """
environment_variables:
  MISTRAL_API_KEY: mistral-very-secret
  AZURE_API_BASE: https://eu.openai.azure.com

model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      rpm: 480
      tpm: 100000
      timeout: 30
      temperature: 0.2
      max_tokens: 512
      response_format: {type: json_object}
    model_info:
      id: openai-gpt-4o
      max_input_tokens: 128000
      supports_vision: true
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-eu
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_KEY
      api_version: 2024-10-21
      weight: 2
      extra_headers: {x-team: research}
      input_cost_per_token: 0.0000025
    model_info:
      base_model: azure/gpt-4o
      output_cost_per_token: 0.00001
  - model_name: mistral-large
    litellm_params:
      model: mistral/mistral-large-latest
      stream_timeout: 15
      drop_params: false
  - model_name: local-llama
    litellm_params:
      model: meta-llama/Llama-3.1-8B-Instruct
      custom_llm_provider: hosted_vllm
      api_base: http://vllm:8000/v1
      aws_secret_access_key: os.environ/AWS_SECRET
      top_k: 40
      extra_body: {repetition_penalty: 1.1}
    rpm: 60

router_settings:
  routing_strategy: latency-based-routing
  routing_strategy_args: {lowest_latency_buffer: 0.1, ttl: 60}
  allowed_fails: 2
  cooldown_time: 30
  retry_policy:
    RateLimitErrorRetries: 4
    TimeoutErrorRetries: 1
  allowed_fails_policy:
    RateLimitErrorAllowedFails: 100
  fallbacks: [{gpt-4o: [mistral-large]}]
  model_group_alias:
    gpt-4: gpt-4o
    claude: {model: mistral-large, hidden: true}
  redis_host: redis.internal
  redis_port: 6380
  redis_password: os.environ/REDIS_PASSWORD

litellm_settings:
  drop_params: true
  num_retries: 3
  request_timeout: 120
  context_window_fallbacks: [{gpt-4o: [local-llama]}]
  set_verbose: false
  success_callback: [langfuse]
  cache: true

general_settings:
  master_key: os.environ/MASTER_KEY
  database_url: os.environ/DATABASE_URL
  alerting: [slack]
  alerting_args: os.environ/ALERTING_ARGS
"""


def load(text: str, **environ: str) -> Config:
    return load_config_text(text, environ)


def test_litellm_config_loads_into_typed_sections() -> None:
    config = load_config_text(LITELLM_CONFIG, SECRETS)

    first = config.model_list[0].litellm_params
    assert first.rpm == 480 and first.tpm == 100000 and first.timeout == 30.0
    assert first.default_params == {
        "temperature": 0.2,
        "max_tokens": 512,
        "response_format": {"type": "json_object"},
    }
    assert config.model_list[0].model_info.supports_vision is True
    # An unquoted YAML date is what the author meant: a version string.
    assert config.model_list[1].litellm_params.api_version == "2024-10-21"
    # Entry-level limits (old LiteLLM configs) land where the router reads them.
    assert config.model_list[3].litellm_params.rpm == 60

    router = config.router_settings
    assert router.routing_strategy == "latency-based-routing"
    assert router.routing_strategy_args.lowest_latency_buffer == 0.1
    assert router.retry_policy == RetryPolicy(RateLimitErrorRetries=4, TimeoutErrorRetries=1)
    assert router.fallbacks == [{"gpt-4o": ["mistral-large"]}]
    assert router.model_group_alias == {
        "gpt-4": "gpt-4o",
        "claude": ModelGroupAlias(model="mistral-large", hidden=True),
    }
    assert config.general_settings == GeneralSettings(
        master_key=Secret("sk-master-very-secret"), database_url=Secret(SECRETS["DATABASE_URL"])
    )
    assert isinstance(config.general_settings.master_key, Secret)


def test_litellm_settings_fill_what_router_settings_leave_unset() -> None:
    router = load_config_text(LITELLM_CONFIG, SECRETS).router_settings
    assert router.num_retries == 3
    assert router.timeout == 120.0
    assert router.context_window_fallbacks == [{"gpt-4o": ["local-llama"]}]
    # router_settings wins where both are set.
    overridden = load("router_settings: {num_retries: 1}\nlitellm_settings: {num_retries: 5}")
    assert overridden.router_settings.num_retries == 1
    assert load("").router_settings.num_retries == 2


def test_deployments_are_built_per_model_group() -> None:
    deployments = load_config_text(LITELLM_CONFIG, SECRETS).deployments
    assert list(deployments) == ["gpt-4o", "mistral-large", "local-llama"]

    openai, azure = deployments["gpt-4o"]
    assert (openai.provider, openai.model, openai.name) == ("openai", "gpt-4o", "openai-gpt-4o")
    assert openai.api_key == "sk-openai-very-secret" and isinstance(openai.api_key, Secret)
    assert openai.timeout_s == 30.0
    assert openai.drop_params is True  # litellm_settings.drop_params
    assert openai.default_params["temperature"] == 0.2

    assert (azure.provider, azure.model, azure.name) == ("azure", "gpt-4o-eu", "gpt-4o[1]")
    assert azure.api_base == "https://eu.openai.azure.com"
    assert azure.api_version == "2024-10-21"
    assert azure.base_model == "azure/gpt-4o"
    assert azure.extra_headers == {"x-team": "research"}
    assert azure.timeout_s == 120.0  # router timeout, from litellm_settings.request_timeout
    assert (azure.input_cost_per_token, azure.output_cost_per_token) == (0.0000025, 0.00001)

    (mistral,) = deployments["mistral-large"]
    # The provider's usual variable, set by environment_variables.
    assert mistral.api_key == "mistral-very-secret"
    assert mistral.stream_timeout_s == 15.0
    assert mistral.drop_params is False

    (llama,) = deployments["local-llama"]
    assert (llama.provider, llama.model) == ("hosted_vllm", "meta-llama/Llama-3.1-8B-Instruct")
    assert llama.options == {"aws_secret_access_key": "aws-very-secret"}
    assert llama.default_params == {"top_k": 40, "repetition_penalty": 1.1}


def test_router_redis_becomes_switchboards_redis() -> None:
    settings = load_config_text(LITELLM_CONFIG, SECRETS).switchboard_settings
    assert settings.redis_url == "redis://:redis-very-secret@redis.internal:6380/0"
    explicit = load(
        "switchboard_settings: {redis_url: 'redis://a:1/2'}\nrouter_settings: {redis_host: b}"
    )
    assert explicit.switchboard_settings.redis_url == "redis://a:1/2"
    quoted_port = load("router_settings: {redis_host: b, redis_port: '7000'}")
    assert quoted_port.switchboard_settings.redis_url == "redis://b:7000/0"


def test_litellm_keys_switchboard_does_not_implement_are_warned_and_listed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="switchboard.config"):
        config = load_config_text(LITELLM_CONFIG, SECRETS)
    ignored = (
        "litellm_settings.success_callback",
        "litellm_settings.cache",
        "general_settings.alerting",
        "general_settings.alerting_args",
    )
    assert config.ignored_keys == ignored
    warned = [r.getMessage() for r in caplog.records if "not implemented" in r.getMessage()]
    assert warned == [f"{p}: not implemented by Switchboard, ignored" for p in ignored]


def test_ignored_keys_are_not_resolved_so_their_variables_may_be_unset() -> None:
    # general_settings.alerting_args names ALERTING_ARGS, which SECRETS does not set.
    assert (
        "general_settings.alerting_args" in load_config_text(LITELLM_CONFIG, SECRETS).ignored_keys
    )


def test_the_database_url_is_the_configs_else_litellms_variable() -> None:
    # Issue #17: general_settings.database_url is no longer ignored.
    config = load_config_text(LITELLM_CONFIG, SECRETS)
    assert config.general_settings.database_url == SECRETS["DATABASE_URL"]
    from_env = load("model_list: []\n", DATABASE_URL="sqlite:///x.db")
    assert from_env.general_settings.database_url == "sqlite:///x.db"
    assert load("model_list: []\n").general_settings.database_url is None
    both = load("general_settings: {database_url: 'sqlite:///a.db'}\n", DATABASE_URL="b")
    assert both.general_settings.database_url == "sqlite:///a.db"


def test_no_secret_appears_in_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        config = load_config_text(LITELLM_CONFIG, SECRETS)
    shown = repr(config) + str(config) + caplog.text + repr(config.deployments)
    for secret in [*SECRETS.values(), "mistral-very-secret"]:
        assert secret not in shown


def test_environment_values_are_read_as_the_numbers_and_flags_fields_want() -> None:
    text = (
        "router_settings: {redis_host: r, redis_db: os.environ/DB, "
        "enable_pre_call_checks: os.environ/CHECKS, timeout: os.environ/TIMEOUT}"
    )
    router = load(text, DB="3", CHECKS="true", TIMEOUT="2.5").router_settings
    assert (router.redis_db, router.enable_pre_call_checks, router.timeout) == (3, True, 2.5)


def test_custom_llm_provider_names_the_provider_of_a_bare_model() -> None:
    text = (
        "model_list: [{model_name: a, litellm_params: "
        "{model: my-model, custom_llm_provider: openai, api_base: 'http://h/v1/'}}]"
    )
    (deployment,) = load(text).deployments["a"]
    assert (deployment.provider, deployment.model, deployment.api_base) == (
        "openai",
        "my-model",
        "http://h/v1",
    )


def test_fallbacks_to_unknown_model_groups_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = (
        "model_list: [{model_name: a, litellm_params: {model: openai/a}}]\n"
        "litellm_settings: {fallbacks: [{a: [b]}]}"
    )
    with caplog.at_level(logging.WARNING, logger="switchboard.config"):
        load(text)
    assert caplog.messages == ["litellm_settings.fallbacks[0].a[0]: no model group is named 'b'"]


def test_switchboard_settings_have_documented_defaults() -> None:
    settings = load("").switchboard_settings
    assert settings == SwitchboardSettings()
    assert (settings.redis_url, settings.namespace, settings.lanes) == (None, "sb", ["default"])
    assert (settings.max_queue_depth, settings.request_timeout_s) == (10_000, 600.0)
    assert (settings.claim_idle_ms, settings.renew_interval_ms) == (15_000, 5_000)
    assert (settings.max_deliveries, settings.reply_ttl_s) == (3, 300)
    assert (settings.worker_concurrency, settings.drain_timeout_s) == (256, 30.0)
    assert (settings.max_body_bytes, settings.disconnect_grace_s) == (10 * 1024 * 1024, 0.5)
    assert (settings.heartbeat_interval_s, settings.worker_ttl_s) == (0.25, 5.0)
    assert (settings.takeover_grace_s, settings.takeover_grace) == (None, 1.0)
    assert settings.stream_continuation is True


def test_an_empty_config_loads() -> None:
    config = load("")
    assert config.model_list == [] and config.deployments == {}
    assert config.router_settings == RouterSettings(num_retries=2)


def test_include_extends_lists_and_sets_other_sections(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(
        "model_list: [{model_name: b, litellm_params: {model: openai/b}}]\n"
        "router_settings: {num_retries: 7}\n"
    )
    (tmp_path / "config.yaml").write_text(
        "include: [models.yaml]\nmodel_list: [{model_name: a, litellm_params: {model: openai/a}}]\n"
    )
    config = load_config(tmp_path / "config.yaml", {})
    assert [e.model_name for e in config.model_list] == ["a", "b"]
    assert config.router_settings.num_retries == 7


def test_request_parameter_keys_do_not_shadow_deployment_fields() -> None:
    fields = {f.encode_name for f in msgspec.structs.fields(LiteLLMParams)}
    assert not fields & LiteLLMParams.passthrough_keys


def test_demo_config_loads() -> None:
    config = load_demo_config({"SWITCHBOARD_DEMO_UPSTREAM": "http://127.0.0.1:9/v1"})
    assert set(config.deployments) == {"demo", "demo-fast"}
    assert all(
        d.provider == "openai" and d.api_base == "http://127.0.0.1:9/v1"
        for group in config.deployments.values()
        for d in group
    )
    assert config.ignored_keys == ()
    with pytest.raises(ConfigError, match="SWITCHBOARD_DEMO_UPSTREAM is not set"):
        load_demo_config({})


def test_entries_pair_with_deployments_in_order() -> None:
    config = load_config_text(LITELLM_CONFIG, SECRETS)
    pairs = list(zip(config.entries("gpt-4o"), config.deployments["gpt-4o"], strict=True))
    assert [(e.litellm_params.rpm, e.litellm_params.weight, d.name) for e, d in pairs] == [
        (480, None, "openai-gpt-4o"),
        (None, 2.0, "gpt-4o[1]"),
    ]
