"""`previous_response_id` rebuilds a conversation in one round trip (issue #18: "in one or two
round trips on any front door"), however long the chain: counted on a real Redis, not
timed. A chain's responses share its conversation's slot, so one script walks it."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from workers.ingress import response_store
from workers.redis_streams import Keys

OWNER = "owner-hash"
TURNS = 6


def _message(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}


async def _chain(redis: Redis, keys: Keys) -> list[str]:
    """`TURNS` responses, each the previous one's follow-up."""
    ids: list[str] = []
    parent: str | None = None
    for turn in range(TURNS):
        response_id = response_store.new_response_id(parent)
        response = {"id": response_id, "output": [_message("assistant", f"answer {turn}")]}
        await response_store.save(
            redis,
            keys,
            response=response,
            owner=OWNER,
            parent=parent,
            deployment=f"deployment-{turn}",
            input_items=[_message("user", f"question {turn}")],
            ttl_s=60,
        )
        ids.append(response_id)
        parent = response_id
    return ids


async def test_a_follow_up_rebuilds_its_whole_chain_in_one_round_trip(
    redis: Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await _chain(redis, keys)
    trips: list[str] = []
    execute, command = Pipeline.execute, Redis.execute_command

    async def counted_execute(self: Pipeline, raise_on_error: bool = True) -> Any:
        trips.append("pipeline")
        return await execute(self, raise_on_error)

    async def counted_command(self: Redis, *args: Any, **options: Any) -> Any:
        trips.append(str(args[0]))
        return await command(self, *args, **options)

    monkeypatch.setattr(Pipeline, "execute", counted_execute)
    monkeypatch.setattr(Redis, "execute_command", counted_command)

    found = await response_store.conversation(redis, keys, ids[-1], OWNER)

    assert len(trips) == 1, trips
    texts = [item["content"][0]["text"] for item in found.items]
    expected = [text for turn in range(TURNS) for text in (f"question {turn}", f"answer {turn}")]
    assert texts == expected  # oldest first, each turn's input then its output
    assert found.deployment == f"deployment-{TURNS - 1}"
