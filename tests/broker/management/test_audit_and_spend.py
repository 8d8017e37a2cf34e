"""Issue #17: every change is an audit row (who, what, when, before/after, secrets masked),
readable by proxy admins; spend is readable by key, user, team and date, and reported by day
and group; listeners hear about each committed change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from broker.management import MANAGEMENT, Change
from tests.broker.harness import RunningFrontDoor
from tests.broker.management.conftest import Api
from workers.db import keys, spend
from workers.db.engine import Database


async def test_each_change_is_an_audit_row_with_secrets_masked(api: Api) -> None:
    created = await api.ok(
        "POST",
        "/key/generate",
        {"key_alias": "audited", "metadata": {"note": "upstream sk-live-abcdefghijklmnop"}},
    )
    await api.ok("POST", "/key/update", {"key": created["key"], "max_budget": 4})
    await api.ok("POST", "/key/block", {"key": "audited"})
    await api.ok("POST", "/key/delete", {"keys": [created["key"]]})
    status, _ = await api.post("/key/update", {"key": "audited", "max_budget": 5})
    assert status == 404  # a failed call changes nothing and writes no row

    log = await api.ok("GET", "/audit/logs", object_type="key")
    assert [row["action"] for row in log["audit_logs"]] == ["delete", "block", "update", "create"]
    assert {row["changed_by"] for row in log["audit_logs"]} == {"master key"}
    assert {row["object_id"] for row in log["audit_logs"]} == {created["token_id"]}
    update = log["audit_logs"][2]
    assert update["before_value"]["max_budget"] is None
    assert update["after_value"]["max_budget"] == 4
    text = str(log)
    assert created["key"] not in text and "sk-live-abcdefghijklmnop" not in text
    assert "upstream ***" in text


async def test_spend_is_read_by_key_user_team_and_date_and_reported_by_group(
    api: Api, database: Database
) -> None:
    await api.ok("POST", "/team/new", {"team_id": "t1"})
    key = await api.ok("POST", "/key/generate", {"team_id": "t1", "user_id": "u1", "max_budget": 1})
    day = datetime(2026, 2, 3, 10, tzinfo=UTC)
    records = [
        spend.SpendRecord(
            request_id=f"req_{i}",
            call_type="chat.completions",
            api_key=key["token_id"],
            model="gpt-test",
            model_group="gpt-test" if i < 2 else "embed-test",
            start_time=day + timedelta(days=i // 2),
            end_time=day + timedelta(days=i // 2),
            user_id="u1",
            team_id="t1",
            spend=0.25,
            prompt_tokens=3,
            completion_tokens=2,
            tags=("batch-7",),
        )
        for i in range(3)
    ]
    async with database.transaction() as conn:
        await spend.record_spend(conn, records)

    info = await api.ok("GET", "/key/info", key=key["key"])
    assert info["info"]["spend"] == 0.75 and info["info"]["remaining_budget"] == 0.25
    assert (await api.ok("GET", "/team/info", team_id="t1"))["team_info"]["spend"] == 0.75
    assert (await api.ok("GET", "/user/info", user_id="u1"))["user_info"]["spend"] == 0.75

    by_key = await api.ok("GET", "/spend/logs", api_key=key["key"])
    assert sorted(row["request_id"] for row in by_key) == ["req_0", "req_1", "req_2"]
    one_day = await api.ok(
        "GET", "/spend/logs", team_id="t1", start_date="2026-02-03", end_date="2026-02-03"
    )
    assert sorted(row["request_id"] for row in one_day) == ["req_0", "req_1"]
    assert len(await api.ok("GET", "/spend/logs", user_id="u1")) == 3

    report = await api.ok(
        "GET",
        "/global/spend/report",
        group_by="team",
        start_date="2026-02-01",
        end_date="2026-02-28",
    )
    assert [day["group_by_day"] for day in report] == ["2026-02-03", "2026-02-04"]
    first = report[0]["teams"][0]
    assert first["team_name"] == "t1" and first["total_spend"] == 0.5
    assert first["metadata"][0]["total_tokens"] == 10
    by_model = await api.ok(
        "GET",
        "/global/spend/report",
        group_by="model",
        start_date="2026-02-01",
        end_date="2026-02-28",
    )
    assert by_model[1]["models"][0]["model"] == "embed-test"
    by_tag = await api.ok(
        "GET",
        "/global/spend/report",
        group_by="tag",
        start_date="2026-02-01",
        end_date="2026-02-28",
    )
    assert by_tag[0]["tags"][0] == {**by_tag[0]["tags"][0], "tag": "batch-7", "total_spend": 0.5}
    status, answer = await api.get("/global/spend/report", group_by="planet")
    assert status == 400 and answer["error"]["param"] == "group_by"
    status, answer = await api.get("/spend/logs", start_date="yesterday")
    assert status == 400 and answer["error"]["param"] == "start_date"
    assert keys.hash_token(key["key"]) == key["token_id"]


async def test_the_report_names_the_top_groups_and_sums_the_rest_as_other(
    api: Api, database: Database
) -> None:
    key = await api.ok("POST", "/key/generate", {})
    day = datetime(2026, 4, 1, 10, tzinfo=UTC)
    spent = {"t-big": 0.5, "t-mid": 0.25, "t-small": 0.125, "t-tiny": 0.0625}
    records = [
        spend.SpendRecord(
            request_id=f"req_{team}_{i}",
            call_type="chat.completions",
            api_key=key["token_id"],
            model="m",
            model_group="m" if i == 0 else "n",
            start_time=day + timedelta(days=i),
            end_time=day + timedelta(days=i),
            team_id=team,
            spend=cost,
            prompt_tokens=1,
            completion_tokens=1,
        )
        for team, cost in spent.items()
        for i in range(2)
    ]
    async with database.transaction() as conn:
        await spend.record_spend(conn, records)
    span = {"start_date": "2026-04-01", "end_date": "2026-04-30"}

    report = await api.ok("GET", "/global/spend/report", group_by="team", top_n="2", **span)
    assert [d["group_by_day"] for d in report] == ["2026-04-01", "2026-04-02"]
    first = report[0]["teams"]
    assert [g["team_name"] for g in first] == ["t-big", "t-mid", "other"]
    other = first[2]
    assert other["is_other"] is True and other["groups"] == 2
    assert other["total_spend"] == 0.1875 and other["metadata"][0]["api_requests"] == 2
    assert other["metadata"][0]["total_tokens"] == 4 and other["metadata"][0]["model"] == "m"
    assert report[1]["teams"][2]["metadata"][0]["model"] == "n"

    totals = await api.ok(
        "GET", "/global/spend/report", group_by="team", view="totals", top_n="3", **span
    )
    assert [g["team_name"] for g in totals["teams"]] == ["t-big", "t-mid", "t-small"]
    assert totals["teams"][0] == {
        "team_name": "t-big",
        "total_spend": 1.0,
        "total_tokens": 4,
        "api_requests": 2,
    }
    assert totals["other"] == {
        "team_name": "other",
        "total_spend": 0.125,
        "total_tokens": 4,
        "api_requests": 2,
        "is_other": True,
        "groups": 1,
    }
    assert totals["total_spend"] == 1.875 and totals["groups"] == 4
    everyone = await api.ok("GET", "/global/spend/report", group_by="team", view="totals", **span)
    assert len(everyone["teams"]) == 4 and everyone["other"] is None
    # Keys come with their alias and display name, so a page need not list every key.
    by_key = await api.ok("GET", "/global/spend/report", group_by="api_key", top_n="1", **span)
    named = by_key[0]["api_keys"][0]
    assert named["api_key"] == key["token_id"] and named["key_name"] == key["key_name"]
    assert "key_alias" in named
    key_totals = await api.ok(
        "GET", "/global/spend/report", group_by="api_key", view="totals", **span
    )
    assert key_totals["api_keys"][0]["key_name"] == key["key_name"]
    assert key_totals["api_keys"][0]["total_spend"] == 1.875
    for bad in ({"top_n": "0"}, {"top_n": "many"}, {"view": "weeks"}):
        status, answer = await api.get("/global/spend/report", **bad)
        assert status == 400 and answer["error"]["param"] == next(iter(bad))


async def test_listeners_hear_each_committed_change(api: Api, door: RunningFrontDoor) -> None:
    heard: list[Change] = []

    async def listener(change: Change) -> None:
        heard.append(change)

    door.app[MANAGEMENT].listeners.append(listener)
    created = await api.ok("POST", "/key/generate", {"key_alias": "mirrored"})
    await api.ok("POST", "/key/block", {"key": "mirrored"})
    await api.post("/key/block", {"key": "missing"})  # 404: nothing committed
    assert [(c.action, c.object_type, c.object_id) for c in heard] == [
        ("create", "key", created["token_id"]),
        ("block", "key", created["token_id"]),
    ]
    assert heard[1].after is not None and heard[1].after["blocked"] is True
