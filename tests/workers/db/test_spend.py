"""The ledger's write: idempotent by request id, moving every total and daily aggregate once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from workers.db import keys, rows, spend, teams, users
from workers.db.engine import Database
from workers.db.tables import daily_spend, daily_tag_spend, end_users, organizations, spend_logs

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def seed(database: Database) -> str:
    stamp = rows.now()
    token = keys.hash_token("sk-ledger-test")
    async with database.transaction() as conn:
        await rows.insert(
            conn,
            organizations,
            {
                "organization_id": "org1",
                "organization_alias": "Org",
                "created_at": stamp,
                "updated_at": stamp,
            },
        )
        await teams.insert(
            conn,
            {"team_id": "t1", "organization_id": "org1", "created_at": stamp, "updated_at": stamp},
        )
        await users.insert(
            conn,
            {
                "user_id": "u1",
                "user_role": "internal_user",
                "created_at": stamp,
                "updated_at": stamp,
            },
        )
        await teams.add_member(conn, "t1", "u1", teams.MEMBER, None)
        await keys.insert(
            conn,
            {
                "token": token,
                "key_name": "sk-...test",
                "user_id": "u1",
                "team_id": "t1",
                "organization_id": "org1",
                "created_at": stamp,
                "updated_at": stamp,
            },
        )
    return token


def record(token: str, request_id: str, cost: float, **extra: object) -> spend.SpendRecord:
    values: dict[str, Any] = {
        "request_id": request_id,
        "call_type": "chat.completions",
        "api_key": token,
        "model": "gpt-test",
        "model_group": "gpt-test",
        "provider": "openai",
        "start_time": START,
        "end_time": START + timedelta(seconds=1),
        "user_id": "u1",
        "team_id": "t1",
        "organization_id": "org1",
        "end_user": "customer-1",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "spend": cost,
        "tags": ("jobA", "jobA", "nightly"),
        **extra,
    }
    return spend.SpendRecord(**values)


async def test_a_redelivered_batch_changes_nothing(database: Database) -> None:
    token = await seed(database)
    batch = [record(token, "req_1", 0.25), record(token, "req_2", 0.5)]
    async with database.transaction() as conn:
        assert await spend.record_spend(conn, batch) == 2
    async with database.transaction() as conn:
        assert await spend.record_spend(conn, [*batch, record(token, "req_3", 1.0)]) == 1
        assert await spend.record_spend(conn, [record(token, "req_3", 1.0)]) == 0

    async with database.transaction() as conn:
        assert await rows.scalar(conn, sa.select(sa.func.count()).select_from(spend_logs)) == 3
        key = await keys.get(conn, token)
        assert key is not None
        assert key["spend"] == 1.75
        assert key["model_spend"] == {"gpt-test": 1.75}
        assert key["last_active"] == START + timedelta(seconds=1)
        user = await users.get(conn, "u1")
        team = await teams.get(conn, "t1")
        member = await teams.membership(conn, "t1", "u1")
        org = await rows.get(conn, organizations, "org1")
        customer = await rows.get(conn, end_users, "customer-1")
        for owner in (user, team, member, org, customer):
            assert owner is not None and owner["spend"] == 1.75


async def test_a_batch_larger_than_one_insert_is_written_whole_and_counted_once(
    database: Database,
) -> None:
    """The log rows go in statements of INSERT_CHUNK rows (issue #22): a batch of several,
    some already in, counts each new row once."""
    token = await seed(database)
    size = spend.INSERT_CHUNK * 2 + 7
    async with database.transaction() as conn:
        assert await spend.record_spend(conn, [record(token, "req_0", 1.0)]) == 1
    batch = [record(token, f"req_{i}", 1.0) for i in range(size)]
    async with database.transaction() as conn:
        assert await spend.record_spend(conn, batch) == size - 1
        count = sa.select(sa.func.count()).select_from(spend_logs)
        assert await rows.scalar(conn, count) == size
        key = await keys.get(conn, token)
        assert key is not None and key["spend"] == size


async def test_daily_aggregates_count_each_request_once_and_each_tag_once(
    database: Database,
) -> None:
    token = await seed(database)
    async with database.transaction() as conn:
        await spend.record_spend(
            conn,
            [
                record(token, "req_a", 0.1),
                record(token, "req_b", 0.2, status="failure"),
                record(token, "req_c", 0.3, start_time=START + timedelta(days=1)),
            ],
        )
        days = await rows.fetch_all(conn, sa.select(daily_spend).order_by(daily_spend.c.day))
        assert [(d["day"], d["api_requests"], d["failed_requests"]) for d in days] == [
            ("2026-03-01", 2, 1),
            ("2026-03-02", 1, 0),
        ]
        assert round(days[0]["spend"], 6) == 0.3
        assert days[0]["team_id"] == "t1" and days[0]["prompt_tokens"] == 20
        tags = await rows.fetch_all(conn, sa.select(daily_tag_spend))
        assert sorted((t["day"], t["tag"], t["api_requests"]) for t in tags) == [
            ("2026-03-01", "jobA", 2),
            ("2026-03-01", "nightly", 2),
            ("2026-03-02", "jobA", 1),
            ("2026-03-02", "nightly", 1),
        ]
        by_team = await spend.report(conn, "team", first_day="2026-03-01", last_day="2026-03-01")
        assert [(r["group"], r["api_requests"]) for r in by_team] == [("t1", 2)]
        logs = await spend.logs(conn, api_key=token, start=START, end=START + timedelta(hours=1))
        assert {log["request_id"] for log in logs} == {"req_a", "req_b"}


async def test_report_totals_and_the_named_groups_sum_in_the_database(database: Database) -> None:
    token = await seed(database)
    async with database.transaction() as conn:
        await spend.record_spend(
            conn,
            [
                record(token, "req_a", 0.25),
                record(token, "req_b", 0.5, model_group="other-model"),
                record(token, "req_c", 1.0, start_time=START + timedelta(days=1)),
            ],
        )
        window = {"first_day": "2026-03-01", "last_day": "2026-03-31"}
        by_model = await spend.totals(conn, "model", **window)
        assert [(r["group"], r["spend"], r["api_requests"]) for r in by_model][0][1:] == (1.25, 2)
        assert [r["group"] for r in by_model][1] == "other-model"
        assert all(isinstance(r["prompt_tokens"], int) for r in by_model)
        named, every = await spend.report_of_groups(conn, "model", ["other-model"], **window)
        assert [(r["day"], r["group"], r["spend"]) for r in named] == [
            ("2026-03-01", "other-model", 0.5)
        ]
        assert sorted((r["day"], r["model_group"], r["spend"]) for r in every)[-1] == (
            "2026-03-02",
            by_model[0]["group"],
            1.0,
        )
        assert await spend.report_of_groups(conn, "tag", [], **window) != ([], [])
        assert await spend.rank(conn, "api_key", 5, **window) == ([token], 1)
        assert await spend.rank(conn, "model", 1, **window) == ([by_model[0]["group"]], 2)
        assert await spend.rank(conn, "team", 1, first_day="2027-01-01", last_day="2027-01-02") == (
            [],
            0,
        )
        by_key = await spend.totals(conn, "api_key", **window)
        assert [(r["group"], r["spend"], r["prompt_tokens"]) for r in by_key] == [(token, 1.75, 30)]
        named, _ = await spend.report_of_groups(conn, "api_key", [token], **window)
        assert sorted((r["day"], r["model_group"], r["api_requests"]) for r in named) == [
            ("2026-03-01", "gpt-test", 1),
            ("2026-03-01", "other-model", 1),
            ("2026-03-02", "gpt-test", 1),
        ]
