"""Spend per key over aligned blocks of days: any range is covered exactly, the ledger's write
keeps the blocks, and a key's total over a range is the sum of its requests in that range."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from workers.db import key_blocks, spend
from workers.db.engine import Database

FIRST = date(2026, 1, 1)


def days_of(blocks: list[tuple[int, str]]) -> list[int]:
    found: list[int] = []
    for level, first in blocks:
        start = key_blocks.day_number(first)
        assert start % (1 << level) == 0  # aligned
        found.extend(range(start, start + (1 << level)))
    return found


@pytest.mark.parametrize("length", [1, 2, 7, 30, 31, 90, 365, 800])
def test_a_range_is_covered_by_few_aligned_blocks_exactly_once(length: int) -> None:
    rng = random.Random(length)
    for _ in range(50):
        first = FIRST + timedelta(days=rng.randrange(400))
        last = first + timedelta(days=length - 1)
        blocks = key_blocks.cover(first.isoformat(), last.isoformat())
        start = key_blocks.day_number(first.isoformat())
        assert sorted(days_of(blocks)) == list(range(start, start + length))
        # At most two per level, plus the top blocks a long range needs.
        top = 1 << (key_blocks.LEVELS - 1)
        assert len(blocks) <= 2 * key_blocks.LEVELS + length // top


def test_a_day_is_in_one_block_per_level() -> None:
    blocks = key_blocks.blocks_of("2026-12-06")
    assert [level for level, _ in blocks] == list(range(key_blocks.LEVELS))
    for level, first in blocks:
        start = key_blocks.day_number(first)
        assert start <= key_blocks.day_number("2026-12-06") < start + (1 << level)
    assert key_blocks.cover("2026-12-07", "2026-12-06") == []


def spend_row(request_id: str, token: str, day: int, cost: float) -> spend.SpendRecord:
    start = datetime(2026, 1, 1, 10, tzinfo=UTC) + timedelta(days=day)
    return spend.SpendRecord(
        request_id=request_id,
        call_type="chat.completions",
        api_key=token,
        model="gpt",
        model_group="gpt" if day % 2 else "claude",
        start_time=start,
        end_time=start,
        prompt_tokens=3,
        completion_tokens=1,
        spend=cost,
    )


async def test_the_ledgers_write_keeps_each_keys_blocks(database: Database) -> None:
    rng = random.Random(21)
    written = [
        spend_row(f"req_{i}", f"key{rng.randrange(5)}", rng.randrange(120), rng.randrange(1, 9))
        for i in range(300)
    ]
    async with database.transaction() as conn:
        for start in range(0, len(written), 70):  # several batches, as the ledger sends them
            await spend.record_spend(conn, written[start : start + 70])
        for _ in range(20):
            first = rng.randrange(120)
            last = first + rng.randrange(60)
            window = {
                "first_day": (FIRST + timedelta(days=first)).isoformat(),
                "last_day": (FIRST + timedelta(days=last)).isoformat(),
            }
            expected: dict[str, float] = {}
            for row in written:
                if first <= (row.start_time.date() - FIRST).days <= last:
                    expected[row.api_key] = expected.get(row.api_key, 0.0) + row.spend
            found = await spend.totals(conn, "api_key", **window)
            assert {r["group"]: r["spend"] for r in found} == expected
            assert all(r["prompt_tokens"] == 3 * r["api_requests"] for r in found)
            top, n_groups = await spend.rank(conn, "api_key", 2, **window)
            ranked = sorted(expected, key=lambda k: (-expected[k], k))
            assert (top, n_groups) == (ranked[:2], len(expected))
