"""/v1/batches through the official openai SDK: upload, create, poll, download; each line
once in the output, in OpenAI's line format; bad lines named by number at create time;
cancel and expiry leave consistent partial outputs; another key's batch is a 404."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import openai
import pytest

from tests.broker.batches.sdk import (
    KEY_B,
    Clients,
    batch_config,
    chat_lines,
    clients,
    finished,
    lines_of,
)
from tests.broker.harness import service
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

__all__ = ["clients"]


async def test_a_batch_runs_through_the_sdk_and_each_line_appears_once(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files")
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        data = chat_lines(60)
        uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"job": "nightly"},
        )
        assert (batch.status, batch.request_counts.total) == ("validating", 60)  # type: ignore[union-attr]
        assert batch.metadata == {"job": "nightly"}
        done = await finished(sdk, batch.id)
        assert done.status == "completed", done
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (60, 0)
        assert done.completed_at and done.in_progress_at and done.finalizing_at
        assert done.error_file_id is None
        output = await lines_of(sdk, done.output_file_id)
        assert sorted(line["custom_id"] for line in output) == sorted(f"req-{i}" for i in range(60))
        first = output[0]
        assert first["id"].startswith("batch_req_") and first["error"] is None
        assert first["response"]["status_code"] == 200
        assert first["response"]["request_id"].startswith("req_")
        assert first["response"]["body"]["object"] == "chat.completion"
        assert done.output_file_id is not None
        output_file = await sdk.files.retrieve(done.output_file_id)
        assert output_file.purpose == "batch_output"
        assert [b.id for b in (await sdk.batches.list()).data] == [batch.id]
        async with aiohttp.ClientSession() as http, http.get(door.url + "/metrics") as response:
            metrics = await response.text()
        assert 'switchboard_batch_lines_total{outcome="completed"} 60.0' in metrics
        assert 'switchboard_queue_depth{lane="batches"}' in metrics
        assert "switchboard_batches_running" in metrics


async def test_failed_lines_go_to_the_error_file(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files")
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        data = chat_lines(3) + chat_lines(2, model="failing", start=3)
        uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = await finished(sdk, batch.id)
        assert done.request_counts is not None
        output = await lines_of(sdk, done.output_file_id)
        errors = await lines_of(sdk, done.error_file_id)
        assert (done.status, done.request_counts.completed, len(output)) == ("completed", 3, 3)
        assert (done.request_counts.failed, len(errors)) == (2, 2)
        ids = sorted(line["custom_id"] for line in output + errors)
        assert ids == [f"req-{i}" for i in range(5)]
        for line in errors:
            assert line["response"]["status_code"] >= 400
            assert "error" in line["response"]["body"]


async def test_bad_lines_are_refused_at_create_naming_each_line(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files")
    async with service(config, workers=0) as ([door], _):
        sdk = clients(door.url)
        good = chat_lines(1).decode()
        bad_url = good.replace("/v1/chat/completions", "/v1/embeddings")
        bad_model = good.replace("gpt-test", "no-such-model").replace("req-0", "req-9")
        lines = [good, "{not json\n", bad_url.replace("req-0", "req-1"), bad_model, good]
        data = "".join(lines).encode()
        uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
        with pytest.raises(openai.BadRequestError) as raised:
            await sdk.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        message = raised.value.body["message"]  # type: ignore[index]
        for number in ("line 2", "line 3", "line 4", "line 5"):
            assert number in message, message
        assert "line 1:" not in message
        assert "used twice" in message  # line 5 repeats line 1's custom_id
        assert raised.value.body["param"] == "input_file_id"  # type: ignore[index]
        assert (await sdk.batches.list()).data == []


async def test_an_endpoint_not_served_is_refused_clearly(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files")
    async with service(config, workers=0) as ([door], _):
        sdk = clients(door.url)
        uploaded = await sdk.files.create(file=("in.jsonl", chat_lines(1)), purpose="batch")
        for endpoint in ("/v1/responses", "/v1/messages", "/v1/completions"):
            with pytest.raises(openai.BadRequestError) as raised:
                await sdk.batches.create(
                    input_file_id=uploaded.id,
                    endpoint=endpoint,  # type: ignore[arg-type]
                    completion_window="24h",
                )
            assert "endpoint not supported" in raised.value.body["message"]  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            await sdk.batches.create(
                input_file_id="file-" + "0" * 24,
                endpoint="/v1/chat/completions",
                completion_window="24h",
            )


async def test_another_keys_batch_is_not_found(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files")
    async with service(config, workers=0) as ([door], _):
        sdk = clients(door.url)
        uploaded = await sdk.files.create(file=("in.jsonl", chat_lines(2)), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        other = clients(door.url, KEY_B)
        with pytest.raises(openai.NotFoundError):
            await other.batches.retrieve(batch.id)
        with pytest.raises(openai.NotFoundError):
            await other.batches.cancel(batch.id)
        with pytest.raises(openai.NotFoundError):  # nor may it run another's input
            await other.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        assert (await other.batches.list()).data == []


async def test_cancel_midway_leaves_a_consistent_partial_output(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files", window=4)
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        data = chat_lines(40, model="slow")
        uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )

        async def some_done() -> bool:
            counts = (await sdk.batches.retrieve(batch.id)).request_counts
            return counts is not None and counts.completed >= 4

        await eventually(some_done, what="a few lines done", timeout_s=30, poll_s=0.1)
        cancelling = await sdk.batches.cancel(batch.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at
        done = await finished(sdk, batch.id)
        assert done.status == "cancelled" and done.cancelled_at
        assert done.request_counts is not None
        output = await lines_of(sdk, done.output_file_id)
        ids = [line["custom_id"] for line in output]
        assert len(ids) == len(set(ids)) == done.request_counts.completed
        assert 4 <= len(ids) < 40
        assert set(ids) <= {f"req-{i}" for i in range(40)}
        with pytest.raises(openai.ConflictError):
            await sdk.batches.cancel((await _completed_batch(sdk)).id)


async def _completed_batch(sdk: openai.AsyncOpenAI) -> openai.types.Batch:
    uploaded = await sdk.files.create(file=("in.jsonl", chat_lines(1)), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return await finished(sdk, batch.id)


async def test_a_batch_past_its_window_ends_expired_with_what_finished(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files", window=2)
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        data = chat_lines(30, "slow")
        uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="3s",  # type: ignore[arg-type]
        )
        done = await finished(sdk, batch.id)
        assert done.status == "expired" and done.expired_at
        output = await lines_of(sdk, done.output_file_id)
        errors = await lines_of(sdk, done.error_file_id)
        ids = sorted(line["custom_id"] for line in output + errors)
        assert ids == sorted(f"req-{i}" for i in range(30))
        assert output, "some lines finished within the window"
        # A line never started says so; one running when the window passed got the 504 of a
        # passed deadline from its worker.
        expired = [line for line in errors if line["response"] is None]
        assert expired and all(line["error"]["code"] == "batch_expired" for line in expired)
        timed_out = [line for line in errors if line["response"] is not None]
        assert all(line["response"]["status_code"] == 504 for line in timed_out)
