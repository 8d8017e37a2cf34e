"""A batch whose lines name several model groups (issue #20), through the official openai
SDK: split by where each line's model runs, so the lines of a native group go to that
provider's batch API (OpenAI's, Anthropic's) and the others to the batch lane, and it
comes back as one batch: one output file with every custom_id once, the counts and the
cost of all its lines, cancellable as a whole."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tests.broker.batches.sdk import Clients, clients, finished, lines_of
from tests.broker.batches.test_native_batches import calls, native_config, provider, submit
from tests.broker.harness import service
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

__all__ = ["clients", "provider"]

# Line i names MODELS[i % 3]: OpenAI's batch API, Anthropic's, and the batch lane.
MODELS = ("gpt-native", "claude-native", "gpt-test")


def mixed(count: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODELS[i % 3],
                "messages": [{"role": "user", "content": f"hi {i}"}],
                "max_tokens": 50,
            },
        }
        for i in range(count)
    ]


async def test_a_batch_of_several_groups_runs_each_line_where_its_model_says(
    provider: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = native_config(provider, namespace, tmp_path)
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        batch_id = await submit(sdk, mixed(30))
        done = await finished(sdk, batch_id)
        assert done.status == "completed", done
        assert done.request_counts is not None
        assert (done.request_counts.total, done.request_counts.completed) == (30, 30)
        output = await lines_of(sdk, done.output_file_id)
        counted = Counter(line["custom_id"] for line in output)
        assert sorted(counted) == sorted(f"req-{i}" for i in range(30))
        assert max(counted.values()) == 1
        models = {line["custom_id"]: line["response"]["body"]["model"] for line in output}
        assert all("claude" in models[f"req-{i}"] for i in range(1, 30, 3))
        assert (done.model_extra or {})["cost_usd"] > 0
        # One batch in the list, and its files only: the parts are its own business.
        listed = await sdk.batches.list()
        assert [batch.id for batch in listed.data] == [batch_id]
        files = {f.filename for f in (await sdk.files.list()).data if f.purpose == "batch_output"}
        assert files == {f"{batch_id}_output.jsonl"}
    # Each native group's lines went to its provider's batch API, the others to the lane.
    (openai_batch,) = calls(provider, "POST", "/v1/batches")
    (anthropic_batch,) = calls(provider, "POST", "/v1/messages/batches")
    assert len(anthropic_batch.json["requests"]) == 10
    assert len(calls(provider, "POST", "/v1/messages")) == 10
    # 10 from OpenAI's batch, 10 from the lane.
    assert len(calls(provider, "POST", "/v1/chat/completions")) == 20
    assert openai_batch.json["metadata"]["switchboard_batch_id"] != batch_id  # its part's


async def test_cancelling_a_split_batch_cancels_every_part(
    namespace: str, tmp_path: Path, clients: Clients
) -> None:
    async with FakeUpstream(batch_delay_s=5.0) as slow:
        config = native_config(slow, namespace, tmp_path)
        async with service(config, workers=1) as ([door], _):
            sdk = clients(door.url)
            rows = [row for row in mixed(30) if row["body"]["model"] != "gpt-test"]
            batch_id = await submit(sdk, rows)
            await eventually(
                lambda: (
                    len(calls(slow, "POST", "/v1/messages/batches")) == 1
                    and len(calls(slow, "POST", "/v1/batches")) == 1
                ),
                what="both parts handed over",
                timeout_s=20,
            )
            cancelling = await sdk.batches.cancel(batch_id)
            assert cancelling.status == "cancelling"
            done = await finished(sdk, batch_id)
            assert done.status == "cancelled", done
            # Nothing ran: the lines that never did are left out, as for any cancel.
            assert done.request_counts is not None and done.request_counts.completed == 0
            assert done.output_file_id is None and done.error_file_id is None
        # The cancel went on to both providers' batches.
        cancels = [r for r in slow.requests if r.method == "POST" and r.path.endswith("/cancel")]
        assert len(cancels) == 2
