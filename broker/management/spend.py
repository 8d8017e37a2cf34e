"""Spend and the audit log: /spend/logs, /global/spend/report, /audit/logs.

/global/spend/report answers in LiteLLM's shape: one entry per day, and in it one entry per
group (team, key, user, organization, model or tag) with its total and its spend per model.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker.management.access import denied
from broker.management.http import Call, day_start, endpoint
from workers.db import audit, keys, spend
from workers.db.rows import Row, now
from workers.errors import InvalidRequest

DEFAULT_REPORT_DAYS = 30
# group_by -> (the list's name in the answer, the group's field in it), LiteLLM's for teams.
REPORT_SHAPES = {
    "team": ("teams", "team_name"),
    "api_key": ("api_keys", "api_key"),
    "user": ("users", "user_id"),
    "organization": ("organizations", "organization_id"),
    "model": ("models", "model"),
    "tag": ("tags", "tag"),
}


@endpoint
async def logs(call: Call) -> list[Row]:
    principal = call.principal
    api_key, user_id, team_id = call.query("api_key"), call.query("user_id"), call.query("team_id")
    token = None if api_key is None else keys.token_of(api_key)
    first, last = call.query_date("start_date"), call.query_date("end_date")
    team_ids = None if team_id is None else [team_id]
    async with call.transaction() as conn:
        if not principal.reads_all:
            if team_id is not None and team_id not in principal.admin_of:
                raise denied(f"you do not administer team `{team_id}`")
            if token is not None:
                key = await keys.get(conn, token)
                if key is None or not principal.may_read_key(key):
                    raise denied("you may read only the spend of your own keys")
            elif team_id is None:
                if user_id not in (None, principal.user_id):
                    raise denied("you may read only your own spend")
                user_id = principal.user_id
                if user_id is None:  # a key without a user: its own spend
                    token = principal.token
        return await spend.logs(
            conn,
            api_key=token,
            user_id=user_id,
            team_ids=team_ids,
            request_id=call.query("request_id"),
            start=None if first is None else day_start(first),
            end=None if last is None else day_start(last) + timedelta(days=1),
            limit=call.query_int("limit", 100),
        )


@endpoint
async def report(call: Call) -> list[dict[str, Any]] | dict[str, Any]:
    """LiteLLM's report; `top_n` (ours) names the N biggest groups and sums the rest into
    one entry per day marked `"is_other": true`; `view=totals` (ours) answers one total per
    group over the range instead of one entry per day."""
    call.principal.require_reader("read the spend report")
    group_by = call.query("group_by") or "team"
    if group_by not in REPORT_SHAPES:
        raise InvalidRequest(
            f"`group_by` must be one of {', '.join(REPORT_SHAPES)}", param="group_by"
        )
    view = call.query("view") or "days"
    if view not in ("days", "totals"):
        raise InvalidRequest("`view` must be `days` or `totals`", param="view")
    top_n = call.query_int("top_n", 0, low=1, high=MAX_TOP_N)
    last = call.query_date("end_date") or now().date()
    first = call.query_date("start_date") or last - timedelta(days=DEFAULT_REPORT_DAYS)
    days = {"first_day": first.isoformat(), "last_day": last.isoformat()}
    async with call.transaction() as conn:
        if view == "totals":
            found = await spend.totals(conn, group_by, **days)
            totals = shape_totals(found, group_by, top_n or DEFAULT_TOP_N)
            await name_keys(conn, group_by, totals[REPORT_SHAPES[group_by][0]])
            return totals
        if not top_n:
            return shape_report(await spend.report(conn, group_by, **days), group_by)
        top, n_groups = await spend.rank(conn, group_by, top_n, **days)
        named, every = await spend.report_of_groups(conn, group_by, top, **days)
        rank = {group: i for i, group in enumerate(top)}
        named.sort(key=lambda row: rank[row["group"]])  # biggest first within each day
        found = shape_report(named + others_of(named, every), group_by, n_groups - len(top))
        plural = REPORT_SHAPES[group_by][0]
        await name_keys(conn, group_by, [entry for day in found for entry in day[plural]])
    return found


async def name_keys(conn: AsyncConnection, group_by: str, entries: list[dict[str, Any]]) -> None:
    """Give each key the report names its alias and display name (`sk-...abcd`), so a page
    shows who spent without listing every key (the `top_n` named: a few dozen at most)."""
    if group_by != "api_key":
        return
    found = await keys.names(conn, {e["api_key"] for e in entries if not e.get("is_other")})
    for entry in entries:
        key = found.get(entry["api_key"])
        if key is not None:
            entry["key_alias"], entry["key_name"] = key["key_alias"], key["key_name"]


MAX_TOP_N = 1000
DEFAULT_TOP_N = 100
OTHER = "other"


def others_of(named: list[Row], every: list[Row]) -> list[Row]:
    """Per day and model group, what every group spent less what the named groups did."""
    taken: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * len(MEASURES))
    for row in named:
        sums = taken[(row["day"], row["model_group"])]
        for i, name in enumerate(MEASURES):
            sums[i] += row[name] or 0
    rest: list[Row] = []
    for row in every:
        sums = taken.get((row["day"], row["model_group"]), [0.0] * len(MEASURES))
        left = {name: (row[name] or 0) - sums[i] for i, name in enumerate(MEASURES)}
        if left["api_requests"] > 0 or left["spend"] > 1e-12:
            rest.append(
                {"day": row["day"], "group": None, "model_group": row["model_group"], **left}
            )
    return rest


MEASURES = ("spend", "prompt_tokens", "completion_tokens", "api_requests")


def shape_report(found: list[Row], group_by: str, n_others: int = 0) -> list[dict[str, Any]]:
    plural, field = REPORT_SHAPES[group_by]
    days: dict[str, dict[str | None, dict[str, Any]]] = defaultdict(dict)
    for row in sorted(found, key=lambda r: r["day"]):
        groups = days[row["day"]]
        group = groups.get(row["group"])
        if group is None:
            group = groups[row["group"]] = {field: row["group"], "total_spend": 0.0, "metadata": []}
            if row["group"] is None:  # the others of `top_n`
                group.update({field: OTHER, "is_other": True, "groups": n_others})
        group["total_spend"] += row["spend"] or 0.0
        group["metadata"].append(
            {
                "model": row["model_group"],
                "spend": row["spend"],
                "total_tokens": (row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0),
                "api_requests": row["api_requests"],
            }
        )
    return [{"group_by_day": day, plural: list(groups.values())} for day, groups in days.items()]


def shape_totals(found: list[Row], group_by: str, top_n: int) -> dict[str, Any]:
    plural, field = REPORT_SHAPES[group_by]

    def entry(group: Any, rows: list[Row]) -> dict[str, Any]:
        return {
            field: group,
            "total_spend": sum(r["spend"] or 0.0 for r in rows),
            "total_tokens": sum(
                (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0) for r in rows
            ),
            "api_requests": sum(r["api_requests"] or 0 for r in rows),
        }

    rest = found[top_n:]
    other = None if not rest else {**entry(OTHER, rest), "is_other": True, "groups": len(rest)}
    return {
        "group_by": group_by,
        plural: [entry(row["group"], [row]) for row in found[:top_n]],
        "other": other,
        "total_spend": sum(r["spend"] or 0.0 for r in found),
        "groups": len(found),
    }


@endpoint
async def audit_logs(call: Call) -> dict[str, Any]:
    call.principal.require_admin("read the audit log")
    page, size = call.query_int("page", 1, high=10**6), call.query_int("page_size", 50)
    since = call.query_date("start_date")
    async with call.transaction() as conn:
        rows, total = await audit.list_page(
            conn,
            object_type=call.query("object_type"),
            object_id=call.query("object_id"),
            action=call.query("action"),
            since=None if since is None else day_start(since),
            page=page,
            size=size,
        )
    return {"audit_logs": rows, "total": total, "page": page, "page_size": size}
