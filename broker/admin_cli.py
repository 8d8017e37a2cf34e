"""`switchboard keys | teams | spend | import-litellm`: managing a running Switchboard.

`keys`, `teams` and `spend` are clients of the management API of a running service (`--url`,
default http://127.0.0.1:4000; `--key`, default $SWITCHBOARD_MASTER_KEY), so the command
line can do nothing the API forbids its key. They print tables (`--json` for the answers).
`import-litellm` is the operator's: it copies a LiteLLM database into Switchboard's database
directly, since only a database holds keys as hashes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workers import durations

DEFAULT_URL = "http://127.0.0.1:4000"
KEY_ENV = "SWITCHBOARD_MASTER_KEY"
DATA_DIR_ENV = "SWITCHBOARD_DATA_DIR"
DEFAULT_DATA_DIR = Path("switchboard-data")
TIMEOUT_S = 30
ADMIN_COMMANDS = frozenset({"keys", "teams", "spend", "import-litellm"})
SPEND_GROUPS = {
    "team": "team",
    "key": "api_key",
    "model": "model",
    "tag": "tag",
    "user": "user",
    "organization": "organization",
}


class AdminError(Exception):
    """What the command line prints before exiting 1."""


def data_dir(explicit: Path | None, environ: Mapping[str, str]) -> Path:
    """`--data-dir`, else $SWITCHBOARD_DATA_DIR, else ./switchboard-data; made if missing."""
    chosen = explicit or Path(environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    chosen.mkdir(mode=0o700, parents=True, exist_ok=True)
    return chosen


# ------------------------------------------------------------------------------ parsers


def add_admin_commands(commands: Any) -> None:
    """Add the management commands to the `switchboard` parser's subcommands."""

    def client(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--url", default=DEFAULT_URL, help=f"the service (default {DEFAULT_URL})")
        p.add_argument("--key", default=None, help=f"a management key (default ${KEY_ENV})")
        p.add_argument("--json", action="store_true", help="print the API's JSON answer")
        return p

    keys = commands.add_parser("keys", help="create, list, block, unblock, delete keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    create = client(key_commands.add_parser("create", help="a new key (shown once)"))
    create.add_argument("--alias", required=True)
    create.add_argument("--max-budget", type=float, default=None, help="USD")
    create.add_argument("--budget-duration", default=None, help="30s, 1h, 1d, 30d, 1mo")
    create.add_argument("--models", default=None, help="comma-separated model groups")
    create.add_argument("--team", default=None, help="a team id")
    create.add_argument("--user", default=None, help="a user id")
    create.add_argument("--duration", default=None, help="the key expires after (30d, ...)")
    create.add_argument("--rpm", type=int, default=None)
    create.add_argument("--tpm", type=int, default=None)
    create.add_argument("--max-parallel", type=int, default=None)
    create.add_argument("--tags", default=None, help="comma-separated")
    create.add_argument(
        "--guardrails", default=None, help="comma-separated: the config's guardrails it runs"
    )
    listing = client(key_commands.add_parser("list", help="keys, their spend and budgets"))
    listing.add_argument("--team", default=None)
    listing.add_argument("--user", default=None)
    for action in ("block", "unblock", "delete"):
        target = client(key_commands.add_parser(action, help=f"{action} a key"))
        target.add_argument("key_or_alias", help="the key, its hash or its alias")

    teams = commands.add_parser("teams", help="create, list, delete teams; add members")
    team_commands = teams.add_subparsers(dest="action", required=True)
    team_create = client(team_commands.add_parser("create", help="a new team"))
    team_create.add_argument("--id", dest="team_id", default=None)
    team_create.add_argument("--alias", default=None)
    team_create.add_argument("--max-budget", type=float, default=None)
    team_create.add_argument("--budget-duration", default=None)
    team_create.add_argument("--models", default=None, help="comma-separated model groups")
    client(team_commands.add_parser("list", help="teams, their spend and budgets"))
    member = client(team_commands.add_parser("add-member", help="add a user to a team"))
    member.add_argument("team_id")
    member.add_argument("user_id")
    member.add_argument("--role", choices=["user", "admin"], default="user")
    team_delete = client(team_commands.add_parser("delete", help="delete a team and its keys"))
    team_delete.add_argument("team_id")

    spend = client(commands.add_parser("spend", help="spend by team, key, model or tag"))
    spend.add_argument("--by", choices=sorted(SPEND_GROUPS), default="team")
    spend.add_argument("--since", default="7d", help="how far back (7d, 1mo, ...)")

    imports = commands.add_parser(
        "import-litellm", help="copy keys, users, teams, budgets and spend from LiteLLM"
    )
    imports.add_argument("--database-url", required=True, help="the LiteLLM database")
    imports.add_argument(
        "--target-database-url",
        default=None,
        help="Switchboard's database (default: --config's, else DATABASE_URL, else SQLite "
        "in the data directory)",
    )
    imports.add_argument("--config", type=Path, default=None, help="a Switchboard config")
    imports.add_argument("--data-dir", type=Path, default=None)


# ------------------------------------------------------------------------------ running


def run_admin(args: argparse.Namespace) -> int:
    try:
        if args.command == "import-litellm":
            return run_import(args, os.environ)
        api = Api(args.url, args.key or os.environ.get(KEY_ENV))
        answer, table = COMMANDS[(args.command, getattr(args, "action", None))](api, args)
    except AdminError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2) if args.json else table)
    return 0


class Api:
    def __init__(self, url: str, key: str | None) -> None:
        if not key:
            raise AdminError(f"no key: pass --key or set {KEY_ENV}")
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        params = {k: v for k, v in query.items() if v is not None}
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{exc.code}: {_error_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise AdminError(f"cannot reach {self.url}: {exc}") from None


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:200]


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain text table; money with cents, times without seconds, None as '-'."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = [columns, ["-" * w for w in widths], *cells]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, str) and len(value) > 19 and value[4:5] == "-" and "T" in value:
        return value[:16].replace("T", " ")
    return str(value)


KEY_COLUMNS = [
    "key_alias",
    "key_name",
    "team_id",
    "user_id",
    "spend",
    "max_budget",
    "budget_duration",
    "expires",
    "blocked",
]


def keys_create(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    body = {
        "key_alias": args.alias,
        "max_budget": args.max_budget,
        "models": _csv(args.models),
        "team_id": args.team,
        "user_id": args.user,
        "duration": args.duration,
        "budget_duration": args.budget_duration,
        "rpm_limit": args.rpm,
        "tpm_limit": args.tpm,
        "max_parallel_requests": args.max_parallel,
        "tags": _csv(args.tags),
        "guardrails": _csv(args.guardrails),
    }
    answer = api.call("POST", "/key/generate", {k: v for k, v in body.items() if v is not None})
    shown = table([answer], ["key", *KEY_COLUMNS])
    return answer, shown + "\n\nThe key is shown once: store it now."


def keys_list(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    answer = api.call(
        "GET",
        "/key/list",
        size=1000,
        return_full_object="true",
        team_id=args.team,
        user_id=args.user,
    )
    return answer, table(answer["keys"], KEY_COLUMNS)


def _key_action(action: str) -> Any:
    def run(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
        target = args.key_or_alias
        if action == "delete":
            field = "keys" if target.startswith("sk-") or len(target) == 64 else "key_aliases"
            answer = api.call("POST", "/key/delete", {field: [target]})
            return answer, f"deleted {target if field == 'key_aliases' else 'the key'}"
        answer = api.call("POST", f"/key/{action}", {"key": target})
        return answer, table([answer], KEY_COLUMNS)

    return run


TEAM_COLUMNS = [
    "team_id",
    "team_alias",
    "spend",
    "max_budget",
    "budget_duration",
    "models",
    "blocked",
]


def teams_create(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    body = {
        "team_id": args.team_id,
        "team_alias": args.alias,
        "max_budget": args.max_budget,
        "budget_duration": args.budget_duration,
        "models": _csv(args.models),
    }
    answer = api.call("POST", "/team/new", {k: v for k, v in body.items() if v is not None})
    return answer, table([answer], TEAM_COLUMNS)


def teams_list(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    answer = api.call("GET", "/team/list")
    return answer, table(answer, TEAM_COLUMNS)


def teams_add_member(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    member = {"role": args.role, "user_id": args.user_id}
    answer = api.call("POST", "/team/member_add", {"team_id": args.team_id, "member": member})
    rows = answer["members_with_roles"]
    return answer, table(rows, ["user_id", "user_email", "role"])


def teams_delete(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    answer = api.call("POST", "/team/delete", {"team_ids": [args.team_id]})
    return answer, f"deleted team {args.team_id} and its keys"


def spend_report(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    try:
        today = datetime.now(UTC)
        since = today - (durations.after(today, args.since) - today)
    except ValueError as exc:
        raise AdminError(f"--since: {exc}") from None
    group_by = SPEND_GROUPS[args.by]
    answer = api.call(
        "GET",
        "/global/spend/report",
        group_by=group_by,
        start_date=since.date().isoformat(),
        end_date=today.date().isoformat(),
    )
    totals: dict[str, dict[str, Any]] = {}
    for day in answer:
        for groups in (value for key, value in day.items() if key != "group_by_day"):
            for group in groups:
                name = str(next(iter(group.values())) or "-")
                total = totals.setdefault(
                    name, {args.by: name, "spend": 0.0, "tokens": 0, "requests": 0}
                )
                total["spend"] += group["total_spend"]
                total["tokens"] += sum(m["total_tokens"] for m in group["metadata"])
                total["requests"] += sum(m["api_requests"] for m in group["metadata"])
    ordered = sorted(totals.values(), key=lambda t: t["spend"], reverse=True)
    title = f"spend by {args.by} since {since.date().isoformat()}\n"
    return answer, title + table(ordered, [args.by, "spend", "tokens", "requests"])


COMMANDS = {
    ("keys", "create"): keys_create,
    ("keys", "list"): keys_list,
    ("keys", "block"): _key_action("block"),
    ("keys", "unblock"): _key_action("unblock"),
    ("keys", "delete"): _key_action("delete"),
    ("teams", "create"): teams_create,
    ("teams", "list"): teams_list,
    ("teams", "add-member"): teams_add_member,
    ("teams", "delete"): teams_delete,
    ("spend", None): spend_report,
}


def run_import(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from broker.config.loader import load_config
    from workers.db.engine import Database, sqlite_url
    from workers.db.litellm_import import import_litellm
    from workers.errors import SwitchboardError

    target = args.target_database_url
    if target is None and args.config is not None:
        configured = load_config(args.config, environ).general_settings.database_url
        target = None if configured is None else str(configured)
    target = target or environ.get("DATABASE_URL") or sqlite_url(data_dir(args.data_dir, environ))

    async def run() -> Any:
        database = Database(target)
        try:
            return await import_litellm(args.database_url, database)
        finally:
            await database.close()

    try:
        counts = asyncio.run(run())
    except (SwitchboardError, OSError, SQLAlchemyError) as exc:
        raise AdminError(f"import failed: {exc}") from None
    rows = [
        {"rows": kind, "imported": counts.imported[kind], "already there": counts.present[kind]}
        for kind in counts.imported
    ]
    print(table(rows, ["rows", "imported", "already there"]))
    return 0
