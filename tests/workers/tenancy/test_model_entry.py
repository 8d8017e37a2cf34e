"""Which model_max_budget entry a request counts against (issue #17): the entry naming its
model group, else the model it named, else the most specific `*` pattern."""

from __future__ import annotations

from workers.tenancy.records import Limits, model_entry

ENTRIES = {"openai/*": 1.0, "openai/gpt-4o*": 2.0, "*": 3.0, "gpt-test": 4.0, "gpt-*": 5.0}


def test_an_entry_naming_the_group_wins_over_every_pattern() -> None:
    assert model_entry(ENTRIES, "gpt-test") == "gpt-test"


def test_the_model_named_counts_when_the_group_is_a_wildcard() -> None:
    assert model_entry({"openai/gpt-4o": 1.0, "*": 2.0}, "openai/*", "openai/gpt-4o") == (
        "openai/gpt-4o"
    )


def test_the_pattern_with_the_most_characters_besides_the_star_wins() -> None:
    assert model_entry(ENTRIES, "openai/*", "openai/gpt-4o-mini") == "openai/gpt-4o*"
    assert model_entry(ENTRIES, "openai/*", "openai/o3") == "openai/*"
    assert model_entry(ENTRIES, "gpt-other") == "gpt-*"
    assert model_entry(ENTRIES, "claude") == "*"


def test_a_tie_goes_to_the_first_in_sorted_order() -> None:
    assert model_entry({"b*": 1.0, "*a": 1.0}, "ba") == "*a"
    assert model_entry({"*a": 1.0, "b*": 1.0}, "ba") == "*a"


def test_only_the_star_is_special() -> None:
    entries = {"gpt-?": 1.0, "[ab]*": 2.0, "a.c*": 3.0}
    assert model_entry(entries, "gpt-4") is None
    assert model_entry(entries, "a-x") is None
    assert model_entry(entries, "[ab]x") == "[ab]*"
    assert model_entry(entries, "abc") is None
    assert model_entry(entries, "a.cd") == "a.c*"


def test_no_entry_matches() -> None:
    assert model_entry({"gpt-*": 1.0}, "claude", "claude-3") is None
    assert Limits(model_max_budget={"gpt-*": 1.0}).model_budget("claude") is None


def test_an_entrys_limits_carry_its_own_period() -> None:
    limits = Limits(model_max_budget={"gpt-*": 1.0}, model_budget_duration={"gpt-*": "1d"})
    assert limits.model_budget("gpt-x") == (
        "gpt-*",
        Limits(max_budget=1.0, budget_duration="1d"),
    )


def test_a_members_own_entries_override_its_teams_defaults_one_by_one() -> None:
    team = Limits(
        model_max_budget={"gpt-*": 1.0, "claude": 2.0},
        model_budget_duration={"gpt-*": "1d", "claude": "7d"},
    )
    member = Limits(max_budget=9.0, model_max_budget={"gpt-*": 5.0})
    merged = member.with_model_defaults(team)
    assert merged.max_budget == 9.0
    assert merged.model_max_budget == {"gpt-*": 5.0, "claude": 2.0}
    assert merged.model_budget_duration == {"claude": "7d"}
