from __future__ import annotations

import pytest

from workers.testing.reply import default_text, plan_reply
from workers.testing.scenario import DEFAULT_CHUNKS, Scenario, ScenarioError, parse_scenario
from workers.testing.tokens import count_tokens, split_text


def test_plain_model_name_has_default_behaviour():
    scenario = parse_scenario("gpt-4o-mini")
    assert scenario == Scenario(name="gpt-4o-mini", base="gpt-4o-mini")
    assert scenario.chunks == DEFAULT_CHUNKS
    assert not scenario.has_failure


def test_every_directive_is_parsed_into_its_field():
    scenario = parse_scenario(
        "m~status=429~retry_after=2.5~fail_first=3~hang~ttft=0.5~latency=1~chunk_delay=0.01"
        "~chunks=20~disconnect_after=2~stream_error_after=4~tools=2~cached=1024~reasoning=64"
        "~echo~length"
    )
    assert scenario == Scenario(
        name=scenario.name,
        base="m",
        status=429,
        retry_after_s=2.5,
        fail_first=3,
        hang=True,
        ttft_s=0.5,
        latency_s=1.0,
        chunk_delay_s=0.01,
        chunks=20,
        disconnect_after=2,
        stream_error_after=4,
        tools=2,
        cached_tokens=1024,
        reasoning_tokens=64,
        echo=True,
        length=True,
    )


@pytest.mark.parametrize("kind", ["context_window", "content_filter"])
def test_named_error_kinds_are_400s(kind):
    scenario = parse_scenario(f"gpt-4o~status={kind}")
    assert (scenario.status, scenario.error_kind) == (400, kind)


def test_fail_first_alone_fails_with_500():
    assert parse_scenario("gpt-4o~fail_first=2").status == 500


def test_fail_first_limits_the_failure_to_the_first_requests():
    scenario = parse_scenario("gpt-4o~status=503~fail_first=2")
    assert [scenario.fails(n) for n in (1, 2, 3, 4)] == [True, True, False, False]


def test_failure_without_fail_first_applies_to_every_request():
    scenario = parse_scenario("gpt-4o~disconnect_after=1")
    assert all(scenario.fails(n) for n in (1, 2, 100))
    assert not parse_scenario("gpt-4o~ttft=1").fails(1)


def test_parsed_scenarios_are_cached_by_name():
    assert parse_scenario("gpt-4o~tools=2") is parse_scenario("gpt-4o~tools=2")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("gpt-4o~stauts=429", "unknown directive 'stauts'"),
        ("gpt-4o~status=abc", "bad value in 'status=abc'"),
        ("gpt-4o~status=200", "must be an HTTP error status"),
        ("gpt-4o~chunks=0", "must be at least 1"),
        ("gpt-4o~ttft=-1", "must be a finite number"),
        ("gpt-4o~hang=1", "'hang' takes no value"),
        ("gpt-4o~tools", "'tools' needs a value"),
        ("gpt-4o~", "unknown directive ''"),
    ],
)
def test_bad_directives_fail_loudly(name, message):
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(name)


def test_split_text_keeps_the_text_and_makes_the_asked_number_of_pieces():
    text = "This is a fake reply from gpt-4o."
    for pieces in (1, 3, 7, 20, len(text)):
        parts = split_text(text, pieces)
        assert "".join(parts) == text
        assert len(parts) == pieces
        assert all(parts)
    assert split_text(text, 7)[1] == " is"
    assert split_text("ab", 5) == ("a", "b")
    assert split_text("", 3) == ("",)


def test_token_counts_are_a_quarter_of_the_characters_and_never_zero():
    assert [count_tokens(t) for t in ("", "a", "abcd", "abcde")] == [1, 1, 1, 2]


def test_plan_counts_reasoning_in_completion_and_cached_in_prompt():
    scenario = parse_scenario("gpt-4o~cached=1024~reasoning=10")
    plan = plan_reply(scenario, prompt_tokens=5, last_user_text="hi")
    assert plan.text == default_text("gpt-4o")
    assert plan.prompt_tokens == 1024
    assert plan.completion_tokens == count_tokens(plan.text) + 10
    assert plan.total_tokens == plan.prompt_tokens + plan.completion_tokens


def test_plan_with_tools_has_no_text_and_uses_the_request_tool_names():
    plan = plan_reply(
        parse_scenario("gpt-4o~tools=3"),
        prompt_tokens=5,
        last_user_text="hi",
        tool_names=("lookup", "fetch"),
    )
    assert plan.text is None
    assert plan.finish_reason == "tool_calls"
    assert [call.name for call in plan.tool_calls] == ["lookup", "fetch", "lookup"]
    assert all("".join(call.fragments) == call.arguments for call in plan.tool_calls)
