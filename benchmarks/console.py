"""How fast the console's pages get their data with a big database (issue #21: within 200 ms
per page with 10,000 keys and 1,000,000 spend rows). A benchmark, not a test: it seeds a
database with the rows the ledger writes (spend rows and daily aggregates), starts a front
door in this process, signs in to the console with the master key and times, per page, the
API calls that page makes through the console's proxy, in the order it makes them.

    python -m benchmarks.console                              # 10,000 keys, 1,000,000 rows
    python -m benchmarks.console --keys 10000 --rows 200000 --repeat 20
    python -m benchmarks.console --database-url postgresql://127.0.0.1:5432/bench

Needs a Redis (`$REDIS_URL`, default redis://127.0.0.1:6379/0); uses a namespace of its own
and deletes it at the end. docs/console.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from redis.asyncio import Redis

from broker.app import create_app, front_door_runner
from broker.config.loader import load_config_text
from broker.routes.keys import FRONT_DOOR
from workers.db import key_blocks, keys, spend, tables
from workers.db.engine import Database
from workers.db.rows import now
from workers.db.tables import DAILY_DIMENSIONS

MASTER = "sk-console-bench-master"
TEAMS = 20
# Users, each a member of one team (every 20th its admin): the Teams and Users pages' rows.
USERS = 1000
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet")
DAYS = 30
CHUNK = 5000
TARGET_MS = 200.0


def pages(today: date, request_id: str) -> dict[str, list[str]]:
    """Each page's API calls (broker/console/static/*.js), as the browser makes them."""
    start = (today - timedelta(days=DAYS - 1)).isoformat()
    span = f"start_date={start}&end_date={today.isoformat()}"
    key_list = "/key/list?return_full_object=true&size=100"
    # The Spend page's keys near their budget: the database picks them, most used first.
    near = "/key/list?return_full_object=true&size=100&page=1&min_budget_percent=80"
    return {
        "keys": [key_list],
        "teams": ["/team/list"],
        "team members": ["/team/info?team_id=team-0"],
        "users": ["/user/list?page_size=100"],
        "spend by team": [f"/global/spend/report?group_by=team&top_n=10&{span}", near],
        "spend by key": [f"/global/spend/report?group_by=api_key&top_n=10&{span}", near],
        "spend by model": [f"/global/spend/report?group_by=model&top_n=10&{span}", near],
        "spend by user": [f"/global/spend/report?group_by=user&top_n=10&{span}", near],
        "spend by tag": [f"/global/spend/report?group_by=tag&top_n=10&{span}", near],
        "spend by organization": [
            f"/global/spend/report?group_by=organization&top_n=10&{span}",
            near,
        ],
        # The CSV of totals over the range, the 1,000 keys that spent most (spend.js).
        "spend totals (CSV)": [
            f"/global/spend/report?group_by=api_key&view=totals&top_n=1000&{span}"
        ],
        # A key without the report reads its own rows (spend.js); read here as the master,
        # over every row, which is the heavier case.
        "own usage (spend logs)": [f"/spend/logs?{span}&limit=1000"],
        "budgets near their limit": [near],
        "live": ["/metrics"],
        "models": ["/metrics", "/model/info", "/v1/models"],
        "playground": ["/v1/models"],
        "request inspector": [f"/spend/logs?request_id={request_id}&limit=1"],
    }


def config_text(namespace: str, database_url: str) -> str:
    return f"""\
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:9/v1
      api_key: sk-unused
general_settings:
  master_key: {MASTER}
  database_url: {database_url}
switchboard_settings:
  namespace: {namespace}
"""


async def seed(database: Database, n_keys: int, n_rows: int) -> str:
    """TEAMS teams with USERS members, `n_keys` keys over the teams, and `n_rows` finished
    requests over DAYS days: the spend rows and the daily aggregates the ledger
    (`workers.db.spend.record_spend`) writes, inserted in bulk (the ledger's row-by-row
    upserts would take most of an hour for a million; what is timed is the reading).
    Answers one request id."""
    stamp = now()
    key_rows: list[dict[str, Any]] = []
    for i in range(n_keys):
        key = keys.new_key()
        key_rows.append(
            {
                "token": keys.hash_token(key),
                "key_name": keys.display_name(key),
                "key_alias": f"key-{i}",
                "team_id": f"team-{i % TEAMS}",
                "max_budget": 100.0,
                "spend": float(i % 120),
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
    team_rows = [
        {"team_id": f"team-{t}", "team_alias": f"Team {t}", "max_budget": 10_000.0}
        for t in range(TEAMS)
    ]
    user_rows = [
        {
            "user_id": f"user-{u}",
            "user_email": f"user-{u}@example.com",
            "user_role": "internal_user",
        }
        for u in range(USERS)
    ]
    members = [
        {
            "team_id": f"team-{u % TEAMS}",
            "user_id": f"user-{u}",
            "role": "admin" if u % 20 == 0 else "user",
            "created_at": stamp,
        }
        for u in range(USERS)
    ]
    stamps = {"created_at": stamp, "updated_at": stamp}
    async with database.transaction() as conn:
        await conn.execute(sa.insert(tables.teams), [{**row, **stamps} for row in team_rows])
        await conn.execute(sa.insert(tables.users), [{**row, **stamps} for row in user_rows])
        await conn.execute(sa.insert(tables.team_memberships), members)
        for chunk in range(0, n_keys, CHUNK):
            await conn.execute(sa.insert(tables.api_keys), key_rows[chunk : chunk + CHUNK])
    first = datetime.now(UTC) - timedelta(days=DAYS - 1)
    daily: dict[tuple[Any, ...], list[float]] = {}
    request_id = ""
    for done in range(0, n_rows, CHUNK):
        rows = []
        for i in range(done, min(done + CHUNK, n_rows)):
            owner = key_rows[i % n_keys]
            started = first + timedelta(seconds=(i * 2_592_000 // max(n_rows, 1)) % 2_592_000)
            request_id = f"req_bench_{i:08d}"
            model = MODELS[i % len(MODELS)]
            rows.append(
                {
                    "request_id": request_id,
                    "call_type": "chat.completions",
                    "api_key": owner["token"],
                    "key_alias": owner["key_alias"],
                    "team_id": owner["team_id"],
                    "model": model,
                    "model_group": model,
                    "deployment": f"{model}[0]",
                    "provider": "openai",
                    "prompt_tokens": 100,
                    "completion_tokens": 50,
                    "total_tokens": 150,
                    "spend": 0.0001,
                    "start_time": started,
                    "end_time": started + timedelta(milliseconds=800),
                    "status": "success",
                    "request_tags": [f"tag-{i % 5}"],
                    "metadata": {},
                }
            )
            day = started.date().isoformat()
            sums = daily.setdefault((day, owner["token"], owner["team_id"], model), [0, 0, 0.0, 0])
            sums[0] += 100
            sums[1] += 50
            sums[2] += 0.0001
            sums[3] += 1
        async with database.transaction() as conn:
            await conn.execute(sa.insert(tables.spend_logs), rows)
    aggregates = [
        {
            "day": day,
            "api_key": token,
            "user_id": "",
            "team_id": team,
            "organization_id": "",
            "model_group": model,
            "provider": "openai",
            "prompt_tokens": p,
            "completion_tokens": c,
            "spend": cost,
            "api_requests": n,
            "successful_requests": n,
            "failed_requests": 0,
            "updated_at": stamp,
        }
        for (day, token, team, model), (p, c, cost, n) in daily.items()
    ]
    async with database.transaction() as conn:
        for chunk in range(0, len(aggregates), CHUNK):
            await conn.execute(sa.insert(tables.daily_spend), aggregates[chunk : chunk + CHUNK])
        await sum_daily_groups(conn)
        await sum_key_blocks(conn, daily)
    return request_id


async def sum_daily_groups(conn: Any) -> None:
    """The ledger's days per team, user, organization and model (tables.daily_group_spend),
    summed from the days per key as migration 0002 does."""
    daily, target = tables.daily_spend, tables.daily_group_spend
    measures = ("prompt_tokens", "completion_tokens", "spend", "api_requests")
    counts = ("successful_requests", "failed_requests")
    for group_by, place in spend.ROLLED_UP.items():
        column = daily.c[DAILY_DIMENSIONS[place]]
        select = sa.select(
            daily.c.day,
            sa.literal(group_by),
            column,
            daily.c.model_group,
            *(sa.func.sum(daily.c[name]) for name in (*measures, *counts)),
            sa.literal(now()),
        ).group_by(daily.c.day, column, daily.c.model_group)
        names = ["day", "group_by", "group_id", "model_group", *measures, *counts, "updated_at"]
        await conn.execute(sa.insert(target).from_select(names, select))


async def sum_key_blocks(conn: Any, daily: dict[tuple[Any, ...], list[float]]) -> None:
    """The ledger's spend per key over aligned blocks of days (tables.key_spend_blocks)."""
    blocks: dict[tuple[int, str, str], list[float]] = {}
    for (day, token, _team, _model), measures in daily.items():
        for level, first in key_blocks.blocks_of(day):
            sums = blocks.setdefault((level, first, token), [0, 0, 0.0, 0])
            for i, value in enumerate(measures):
                sums[i] += value
    stamp = now()
    found = [
        {
            "level": level,
            "day": first,
            "api_key": token,
            "prompt_tokens": p,
            "completion_tokens": c,
            "spend": cost,
            "api_requests": n,
            "successful_requests": n,
            "failed_requests": 0,
            "updated_at": stamp,
        }
        for (level, first, token), (p, c, cost, n) in blocks.items()
    ]
    for chunk in range(0, len(found), CHUNK):
        await conn.execute(sa.insert(tables.key_spend_blocks), found[chunk : chunk + CHUNK])


async def time_pages(
    url: str, plan: dict[str, list[str]], repeat: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per page, the wall-clock ms of its calls and the CPU ms this process spent on them
    (the front door runs here, SQLite in its threads: on a shared machine the CPU time is
    the steadier figure; PostgreSQL's own work is in its server, so not in it)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(url + "/ui/api/session") as response:
            csrf = (await response.json())["csrf_token"]
        async with http.post(
            url + "/ui/api/session", json={"key": MASTER}, headers={"X-CSRF-Token": csrf}
        ) as response:
            assert response.status == 200, await response.text()
            csrf = (await response.json())["csrf_token"]
        timings: dict[str, list[float]] = {name: [] for name in ["page shell", *plan]}
        cpu: dict[str, list[float]] = {name: [] for name in timings}
        for _ in range(repeat):
            started, used = time.perf_counter(), time.process_time()
            async with http.get(url + "/ui") as response:
                await response.read()
            timings["page shell"].append((time.perf_counter() - started) * 1000)
            cpu["page shell"].append((time.process_time() - used) * 1000)
            for name, calls in plan.items():
                started, used = time.perf_counter(), time.process_time()
                for call in calls:
                    async with http.get(
                        url + "/ui/api/call" + call, headers={"X-CSRF-Token": csrf}
                    ) as response:
                        await response.read()
                        assert response.status == 200, (call, response.status)
                timings[name].append((time.perf_counter() - started) * 1000)
                cpu[name].append((time.process_time() - used) * 1000)
        return timings, cpu


def report(
    timings: dict[str, list[float]],
    cpu: dict[str, list[float]],
    n_keys: int,
    n_rows: int,
    backend: str,
) -> str:
    lines = [
        f"Console pages with {n_keys:,} keys and {n_rows:,} spend rows ({backend}); "
        f"ms per page, all of its API calls through the console (load {os.getloadavg()[0]:.1f}):",
        "",
        "| page | median | p95 | max | CPU median | within 200 ms (p95) |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in timings.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        ok = "yes" if p95 <= TARGET_MS else "no"
        lines.append(
            f"| {name} | {statistics.median(values):.1f} | {p95:.1f} | {ordered[-1]:.1f} "
            f"| {statistics.median(cpu[name]):.1f} | {ok} |"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        database_url = args.database_url or f"sqlite:///{Path(scratch) / 'bench.db'}"
        database = Database(database_url)
        await database.migrate()
        began = time.perf_counter()
        if args.seeded:  # a database an earlier run seeded (and kept): its last request
            request_id = f"req_bench_{args.rows - 1:08d}"
        else:
            request_id = await seed(database, args.keys, args.rows)
        if database.dialect == "postgresql":
            # What autovacuum does to a database that has been running: statistics for the
            # planner, and a visibility map so index-only scans skip the table. SQLite is
            # left without statistics (`ANALYZE` is not run there by default).
            async with database.engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.execute(sa.text("VACUUM ANALYZE"))
        print(f"seeded in {time.perf_counter() - began:.0f} s")
        await database.close()
        namespace = f"bench-console-{uuid.uuid4().hex[:8]}"
        redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        app = create_app(load_config_text(config_text(namespace, database_url)), redis_url)
        runner = front_door_runner(
            app,
            load_config_text(config_text(namespace, database_url)).switchboard_settings.http,
            shutdown_timeout_s=5,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            # A front door that just started copies every key into the Redis mirror in the
            # background (10,000 here): a running gateway has done that long before.
            refilling = app[FRONT_DOOR].tenancy.refilling
            if refilling is not None:
                await refilling
            timings, cpu = await time_pages(url, pages(date.today(), request_id), args.repeat)
        finally:
            await runner.cleanup()
            redis = Redis.from_url(redis_url)
            async for key in redis.scan_iter(f"{namespace}:*"):
                await redis.delete(key)
            await redis.aclose()
        backend = database_url.split(":", 1)[0]
        print(report(timings, cpu, args.keys, args.rows, backend))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--seeded",
        action="store_true",
        help="the database at --database-url was seeded before (by this benchmark, with "
        "the same --keys and --rows): time it as it is",
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
