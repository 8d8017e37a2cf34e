"""How a config fails: its path, what was expected, the key probably meant, never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import ConfigError, load_config, load_config_text
from workers.providers import PROVIDERS


def error_of(text: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, environ)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model_list:\n"
            + "  - {model_name: a, litellm_params: {model: openai/a}}\n" * 2
            + "  - {model_name: a, litellm_params: {model: openai/a, rpm: lots}}\n",
            "model_list[2].litellm_params.rpm: expected int, got str",
        ),
        (
            "model_list: [{model_name: a, litellm_params: {model: openai/a, temperature: hot}}]",
            "model_list[0].litellm_params.temperature: expected float, got str",
        ),
        (
            "model_list: [{model_name: a, litellm_params: {api_base: 'http://x'}}]",
            "model_list[0].litellm_params: missing required key `model`",
        ),
        (
            "router_settings: {fallbacks: {a: b}}",
            "router_settings.fallbacks: expected list, got mapping",
        ),
        (
            "router_settings: {routing_strategy: fastest}",
            "router_settings.routing_strategy: expected one of: cost-based-routing, "
            "latency-based-routing, least-busy, round-robin, simple-shuffle, "
            "usage-based-routing, usage-based-routing-v2",
        ),
        ("router_settings: {num_retries: -1}", "router_settings.num_retries: expected int >= 0"),
        (
            "switchboard_settings: {lanes: []}",
            "switchboard_settings.lanes: expected list of length >= 1",
        ),
        (
            "switchboard_settings: {renew_interval_ms: 20000}",
            "switchboard_settings: renew_interval_ms must be less than claim_idle_ms",
        ),
        ("- just a list", "expected a mapping of sections (model_list, ...)"),
    ],
)
def test_an_invalid_value_fails_with_its_path_and_what_was_expected(
    text: str, message: str
) -> None:
    assert error_of(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "router_settings: {routing_stratgy: least-busy}",
            "router_settings.routing_stratgy: unknown key; did you mean `routing_strategy`?",
        ),
        (
            "model_list: [{model_name: a, litellm_params: {model: openai/a, temprature: 0}}]",
            "model_list[0].litellm_params.temprature: unknown key; did you mean `temperature`?",
        ),
        (
            "general_settings: {zzz: 1}",
            "general_settings.zzz: unknown key (docs/config.md lists every key)",
        ),
        (
            "switchboard_setting: {}",
            "switchboard_setting: unknown key; did you mean `switchboard_settings`?",
        ),
        # The loader fills these; a config cannot.
        ("ignored_keys: [a]", "ignored_keys: unknown key (docs/config.md lists every key)"),
        (
            "model_list: [{model_name: a, litellm_params: {model: openai/a, default_params: {}}}]",
            "model_list[0].litellm_params.default_params: unknown key; did you mean `drop_params`?",
        ),
    ],
)
def test_an_unknown_key_fails_naming_the_key_probably_meant(text: str, message: str) -> None:
    assert error_of(text) == message


def test_a_missing_environment_variable_fails_naming_path_and_variable() -> None:
    text = (
        "model_list: [{model_name: a, litellm_params: {model: openai/a, api_key: os.environ/NOPE}}]"
    )
    assert (
        error_of(text)
        == "model_list[0].litellm_params.api_key: environment variable NOPE is not set "
        "(export it, or set it under environment_variables)"
    )


def test_an_environment_value_of_the_wrong_type_is_named_but_not_shown() -> None:
    text = "router_settings: {redis_db: os.environ/DB}"
    message = error_of(text, DB="sk-looks-secret")
    assert message == "router_settings.redis_db: environment variable DB does not hold an int"
    strategy = error_of("router_settings: {routing_strategy: os.environ/S}", S="sk-looks-secret")
    assert strategy.startswith("router_settings.routing_strategy: expected one of:")
    assert "sk-looks-secret" not in message + strategy


def test_errors_never_echo_values() -> None:
    messages = [
        error_of("general_settings: {master_key: [sk-in-a-list]}"),
        error_of("model_list: [{model_name: a, litellm_params: {model: openai/a, rpm: sk-abc}}]"),
        error_of("general_settings:\n  master_key: sk-abc: def\n"),
    ]
    assert messages[0] == "general_settings.master_key: expected str, got list"
    assert messages[2].startswith("invalid YAML at line 2, column 21: ")
    assert not any("sk-" in m for m in messages)


def test_an_unknown_provider_fails_at_load_with_its_path() -> None:
    text = "model_list: [{model_name: a, litellm_params: {model: nosuch/model-x}}]"
    assert error_of(text) == (
        "model_list[0].litellm_params.model: cannot tell which provider serves `nosuch/model-x`: "
        f"write it as `provider/model` (providers: {', '.join(PROVIDERS)})"
    )
    hidden = "model_list: [{model_name: a, litellm_params: {model: os.environ/M}}]"
    assert error_of(hidden, M="nosuch/x") == (
        "model_list[0].litellm_params.model: no provider serves this model"
    )


def test_deployment_ids_must_be_unique() -> None:
    entry = "{model_name: a, litellm_params: {model: openai/a}, model_info: {id: same}}"
    assert error_of(f"model_list: [{entry}, {entry}]") == (
        "model_list[1].model_info.id: the same id as model_list[0].model_info.id"
    )


def test_an_unreadable_file_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read .*missing.yaml: No such file"):
        load_config(tmp_path / "missing.yaml", {})
