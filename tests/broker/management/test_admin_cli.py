"""Issue #17, item 5: `switchboard keys | teams | spend` print tables from a running front
door's management API, and can do no more than the API lets their key do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from broker.cli import main
from tests.broker.harness import RunningFrontDoor
from tests.broker.management.conftest import MASTER, Api
from workers.db import spend
from workers.db.engine import Database


async def cli(
    capsys: pytest.CaptureFixture[str], door: RunningFrontDoor, *argv: str, key: str = MASTER
) -> tuple[int, str, str]:
    # The command line blocks on its HTTP call: run it beside the loop serving the door.
    code = await asyncio.to_thread(main, [*argv, "--url", door.url, "--key", key])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_keys_are_created_listed_blocked_and_deleted_from_the_command_line(
    door: RunningFrontDoor, api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    await api.ok("POST", "/team/new", {"team_id": "ops", "models": ["gpt-test"]})
    code, out, _ = await cli(
        capsys,
        door,
        "keys",
        "create",
        "--alias",
        "cli-key",
        "--max-budget",
        "2.5",
        "--models",
        "gpt-test",
        "--team",
        "ops",
        "--duration",
        "30d",
    )
    assert code == 0, out
    assert "cli-key" in out and "2.5" in out and "shown once" in out
    key = next(word for word in out.split() if word.startswith("sk-") and "..." not in word)

    code, out, _ = await cli(capsys, door, "keys", "list")
    assert code == 0
    header, _, row = out.splitlines()[:3]
    assert header.split()[:3] == ["key_alias", "key_name", "team_id"]
    assert row.split()[:3] == ["cli-key", f"sk-...{key[-4:]}", "ops"]
    assert key not in out

    assert (await cli(capsys, door, "keys", "block", "cli-key"))[0] == 0
    assert (await api.ok("GET", "/key/info", key=key))["info"]["blocked"] is True
    assert (await cli(capsys, door, "keys", "unblock", key))[0] == 0
    code, out, _ = await cli(capsys, door, "keys", "delete", "cli-key")
    assert code == 0 and "deleted cli-key" in out
    code, _, err = await cli(capsys, door, "keys", "delete", "cli-key")
    assert code == 1 and "404" in err
    # --guardrails reaches /key/generate, which checks the names against the config's.
    code, _, err = await cli(capsys, door, "keys", "create", "--alias", "g", "--guardrails", "pii")
    assert code == 1 and "unknown guardrails ['pii']" in err


async def test_teams_and_spend_tables(
    door: RunningFrontDoor, api: Api, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await cli(capsys, door, "teams", "create", "--id", "red", "--max-budget", "10"))[0] == 0
    code, out, _ = await cli(capsys, door, "teams", "add-member", "red", "ann", "--role", "admin")
    assert code == 0 and "ann" in out and "admin" in out
    code, out, _ = await cli(capsys, door, "teams", "list")
    assert code == 0 and out.splitlines()[2].split()[:1] == ["red"]

    key = await api.ok("POST", "/key/generate", {"team_id": "red"})
    moment = datetime.now(UTC)
    async with database.transaction() as conn:
        await spend.record_spend(
            conn,
            [
                spend.SpendRecord(
                    request_id=f"r{i}",
                    call_type="chat.completions",
                    api_key=key["token_id"],
                    model="gpt-test",
                    model_group="gpt-test",
                    start_time=moment,
                    end_time=moment,
                    team_id="red",
                    spend=1.25,
                    prompt_tokens=4,
                    completion_tokens=1,
                )
                for i in range(2)
            ],
        )
    code, out, _ = await cli(capsys, door, "spend", "--by", "team", "--since", "7d")
    assert code == 0
    assert out.splitlines()[1].split() == ["team", "spend", "tokens", "requests"]
    assert out.splitlines()[3].split() == ["red", "2.5", "10", "2"]
    code, out, _ = await cli(capsys, door, "spend", "--by", "model", "--json")
    assert code == 0 and '"group_by_day"' in out
    assert (await cli(capsys, door, "teams", "delete", "red"))[0] == 0


async def test_the_command_line_can_do_no_more_than_its_key(
    door: RunningFrontDoor, api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    user_key = (await api.ok("POST", "/user/new", {"user_id": "ann"}))["key"]
    code, _, err = await cli(capsys, door, "teams", "create", "--id", "x", key=user_key)
    assert code == 1 and "403" in err and "proxy admin" in err
    code, _, err = await cli(capsys, door, "keys", "list", key="sk-wrong-key-123")
    assert code == 1 and "401" in err
