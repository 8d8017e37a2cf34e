"""`switchboard check`: every problem at once, each with its path and line; exit 0 or 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import main
from broker.config import ConfigError, load_config_text
from broker.config.problems import InvalidConfig, drop, yaml_lines
from workers.providers import PROVIDERS

BAD = """\
model_list:
  - model_name: a
    litellm_params:
      model: openai/a
      rpm: lots
      temprature: 0
      itpm: 5
  - model_name: b
    litellm_params:
      model: sagemaker/x
  - model_name: c
    litellm_params:
      api_base: http://x
  - model_name: d
    litellm_params:
      model: openai/d
      api_key: os.environ/SB_TEST_UNSET
    model_info:
      version: 2
      id: x
  - model_name: e
    litellm_params: {model: openai/e}
    model_info: {id: x}
router_settings:
  routing_stratgy: least-busy
  num_retries: -1
general_settings:
  use_redis_transaction_buffer: true
"""


def run_check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    status = main(["check", "--config", str(path)])
    return status, capsys.readouterr().out


def test_check_reports_every_problem_with_its_path_and_line_then_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run_check(tmp_path, BAD, capsys)
    assert status == 2
    assert out.splitlines() == [
        "error: model_list[0].litellm_params.rpm (line 5): expected int, got str",
        "error: model_list[0].litellm_params.temprature (line 6): unknown key; "
        "did you mean `temperature`?",
        "error: model_list[1].litellm_params.model (line 10): provider `sagemaker` is not "
        f"supported by Switchboard (supported: {', '.join(PROVIDERS)})",
        "error: model_list[2].litellm_params (line 12): missing required key `model`",
        "error: model_list[3].litellm_params.api_key (line 17): "
        "environment variable SB_TEST_UNSET is not set "
        "(export it, or set it under environment_variables)",
        "error: model_list[4].model_info.id (line 23): the same id as model_list[3].model_info.id",
        "error: router_settings.routing_stratgy (line 25): unknown key; "
        "did you mean `routing_strategy`?",
        "error: router_settings.num_retries (line 26): expected int >= 0",
        "warning: model_list[0].litellm_params.itpm (line 7): "
        "not implemented by Switchboard, ignored",
        "warning: general_settings.use_redis_transaction_buffer (line 28): "
        "not implemented by Switchboard, ignored",
        f"{tmp_path / 'config.yaml'}: invalid, `switchboard up` would not start: "
        "8 errors, 2 warnings",
    ]


def test_check_passes_a_config_with_warnings_and_summarizes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "model_list:\n"
        "  - {model_name: a, litellm_params: {model: openai/a, api_key: k, itpm: 1}}\n"
        "  - {model_name: a, litellm_params: {model: openai/b, api_key: k}}\n"
    )
    status, out = run_check(tmp_path, text, capsys)
    assert status == 0
    assert out.splitlines()[-1].endswith(
        "OK, `switchboard up` would start: 1 model group, 2 deployments, 1 warning"
    )


def test_an_empty_config_starts_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run_check(tmp_path, "", capsys)
    assert status == 0
    assert "warning: model_list: no models: every request will be answered 404" in out


@pytest.mark.parametrize("command", ["serve", "worker", "up"])
def test_a_refused_start_prints_the_same_report(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BAD)
    assert main([command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "switchboard: error: model_list[0].litellm_params.rpm (line 5)" in err
    assert err.rstrip().endswith("8 errors, 2 warnings")


def test_the_loader_raises_every_error_and_behaves_as_its_first() -> None:
    with pytest.raises(InvalidConfig) as info:
        load_config_text(BAD, {})
    assert len(info.value.errors) == 8
    assert isinstance(info.value, ConfigError)
    assert info.value.path == info.value.errors[0].path


def test_model_info_keeps_keys_it_has_no_field_for() -> None:
    text = (
        "model_list: [{model_name: a, litellm_params: {model: openai/a, api_key: k}, "
        "model_info: {version: 2, supported_endpoints: [/v1/chat/completions], id: one}}]"
    )
    config = load_config_text(text, {})
    info = config.model_list[0].model_info
    assert info.extra == {"version": 2, "supported_endpoints": ["/v1/chat/completions"]}
    assert config.deployments["a"][0].name == "one"


def test_litellm_settings_values_apply_where_router_settings_keeps_its_defaults() -> None:
    text = (
        "model_list: [{model_name: a, litellm_params: {model: openai/a, api_key: k}}]\n"
        "litellm_settings: {allowed_fails: 7, cooldown_time: 30, "
        "model_group_alias: {b: a}}\n"
    )
    router = load_config_text(text, {}).router_settings
    assert (router.allowed_fails, router.cooldown_time) == (7, 30)
    assert router.model_group_alias == {"b": "a"}


def test_yaml_lines_and_drop_follow_paths() -> None:
    lines = yaml_lines("a:\n  b:\n    - x\n    - {c: 1}\n")
    assert lines == {"a": 1, "a.b": 2, "a.b[0]": 3, "a.b[1]": 4, "a.b[1].c": 4}
    tree = {"a": {"b": [{"c": 1, "d": 2}]}}
    assert drop(tree, "a.b[0].c") and tree == {"a": {"b": [{"d": 2}]}}
    assert drop(tree, "a.b[...]") and tree == {"a": {}}
    assert not drop([1], "[0]")
