"""The batch fakes (issue #20's native mode), proven by the official SDKs: OpenAI's
`client.files` and `client.batches`, Anthropic's `client.messages.batches` parse what the
fakes send, through create, poll, results and cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from workers.testing import FakeUpstream

TIMEOUT_S = 15


def chat_line(custom_id: str, model: str = "gpt-4o-mini") -> dict[str, object]:
    body = {"model": model, "messages": [{"role": "user", "content": f"hi {custom_id}"}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


@pytest.fixture
async def slow_fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(batch_delay_s=0.2) as server:
        yield server


@pytest.fixture
async def oai(slow_fake: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=slow_fake.base_url + "/v1", api_key="sk-test", max_retries=0, timeout=10
    ) as sdk:
        yield sdk


@pytest.fixture
async def claude(slow_fake: FakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=slow_fake.base_url, api_key="sk-ant-test", max_retries=0, timeout=10
    ) as sdk:
        yield sdk


async def wait_openai(oai: openai.AsyncOpenAI, batch_id: str) -> openai.types.Batch:
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            batch = await oai.batches.retrieve(batch_id)
            if batch.status in ("completed", "failed", "cancelled", "expired"):
                return batch
            await asyncio.sleep(0.05)


async def test_openai_batch_runs_every_line_through_the_sdk(oai: openai.AsyncOpenAI) -> None:
    lines = [chat_line(f"r{i}") for i in range(5)] + [chat_line("bad", "gpt-4o~status=400")]
    uploaded = await oai.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    batch = await oai.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"switchboard_batch": "b1"},
    )
    assert batch.status == "validating" and batch.metadata == {"switchboard_batch": "b1"}
    done = await wait_openai(oai, batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (5, 1)
    assert done.output_file_id and done.error_file_id
    output = (await oai.files.content(done.output_file_id)).content.splitlines()
    got = {json.loads(line)["custom_id"]: json.loads(line) for line in output}
    assert sorted(got) == [f"r{i}" for i in range(5)]
    body = got["r0"]["response"]["body"]
    assert got["r0"]["response"]["status_code"] == 200 and body["object"] == "chat.completion"
    (error,) = (await oai.files.content(done.error_file_id)).content.splitlines()
    assert json.loads(error)["response"]["status_code"] == 400
    listed = await oai.batches.list()
    assert [b.id for b in listed.data] == [batch.id]
    deleted = await oai.files.delete(uploaded.id)
    assert deleted.deleted


async def test_openai_batch_cancelled_midway_keeps_the_lines_that_ran(
    oai: openai.AsyncOpenAI,
) -> None:
    lines = [chat_line(f"r{i}", "gpt-4o-mini~latency=0.05") for i in range(200)]
    uploaded = await oai.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = await oai.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    await asyncio.sleep(0.6)
    cancelling = await oai.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    done = await wait_openai(oai, batch.id)
    assert done.status == "cancelled"
    assert done.request_counts is not None and 0 < done.request_counts.completed < 200


async def wait_anthropic(
    claude: anthropic.AsyncAnthropic, batch_id: str
) -> anthropic.types.messages.MessageBatch:
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            batch = await claude.messages.batches.retrieve(batch_id)
            if batch.processing_status == "ended":
                return batch
            await asyncio.sleep(0.05)


def request(custom_id: str, model: str = "claude-haiku-4-5") -> dict[str, object]:
    params = {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"hi {custom_id}"}],
    }
    return {"custom_id": custom_id, "params": params}


async def test_anthropic_message_batch_through_the_sdk(claude: anthropic.AsyncAnthropic) -> None:
    requests = [request(f"m{i}") for i in range(4)] + [
        request("bad", "claude-haiku-4-5~status=429")
    ]
    batch = await claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]  # plain dicts, as a client writes them
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 5
    done = await wait_anthropic(claude, batch.id)
    assert (done.request_counts.succeeded, done.request_counts.errored) == (4, 1)
    results = {r.custom_id: r.result async for r in await claude.messages.batches.results(batch.id)}
    assert sorted(results) == ["bad", "m0", "m1", "m2", "m3"]
    ok = results["m0"]
    assert ok.type == "succeeded" and ok.message.content[0].type == "text"
    bad = results["bad"]
    assert bad.type == "errored" and bad.error.error.type == "rate_limit_error"
    listed = await claude.messages.batches.list()
    assert [b.id for b in listed.data] == [batch.id]


async def test_anthropic_cancel_leaves_the_rest_canceled(claude: anthropic.AsyncAnthropic) -> None:
    requests = [request(f"m{i}", "claude-haiku-4-5~latency=0.05") for i in range(200)]
    batch = await claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]  # plain dicts, as a client writes them
    await asyncio.sleep(0.6)
    canceling = await claude.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    done = await wait_anthropic(claude, batch.id)
    counts = done.request_counts
    assert counts.canceled > 0 and counts.succeeded > 0
    assert counts.canceled + counts.succeeded == 200
    kinds = {r.result.type async for r in await claude.messages.batches.results(batch.id)}
    assert kinds == {"succeeded", "canceled"}


async def test_anthropic_batches_list_newest_first_a_page_at_a_time(
    claude: anthropic.AsyncAnthropic,
) -> None:
    made = [(await claude.messages.batches.create(requests=[request("m")])).id for _ in range(3)]  # type: ignore[list-item]  # plain dicts, as a client writes them
    first = await claude.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == made[:0:-1]
    assert first.has_more
    # The SDK's auto-pagination follows `after_id` (the page's last id) to the end.
    assert [b.id async for b in await claude.messages.batches.list(limit=2)] == made[::-1]
