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
