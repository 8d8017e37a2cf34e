"""A native batch on real processes: kill -9 of the front door polling the provider's
batch, then another front door takes the lease and polls the same provider batch (never
submits a second one), and the output holds every custom_id exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.types import Batch

from tests.broker.batches.handover import assert_each_once, front_door_handover
from tests.broker.batches.sdk import API_KEYS, KEY_A, Clients, clients, finished, lines_of
from tests.broker.processes import write_config
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

__all__ = ["clients"]

LINES = 80
NATIVE = """\
- model_name: gpt-native
  litellm_params:
    model: openai/gpt-4o-mini
    api_base: {base}/v1
    api_key: sk-native
  model_info:
    batch_mode: native
- model_name: claude-native
  litellm_params:
    model: anthropic/claude-haiku-4-5
    api_base: {base}
    api_key: sk-ant-native
  model_info:
    batch_mode: native
"""
# model group -> the provider's create path and the path each line runs on there.
PROVIDERS = {
    "gpt-native": ("/v1/batches", "/v1/chat/completions"),
    "claude-native": ("/v1/messages/batches", "/v1/messages"),
}


def settings(storage: Path) -> dict[str, Any]:
    return {
        "claim_idle_ms": 2000,
        "renew_interval_ms": 300,
        "heartbeat_interval_s": 0.2,
        "worker_ttl_s": 1.5,
        "public_metrics": "true",  # readiness shows the live workers (wait_ready)
        "api_keys": API_KEYS,
        "files": f"{{storage_dir: '{storage}'}}",
        "batches": "{lease_s: 1.0, native_poll_s: 0.2, native_max_poll_s: 0.5}",
    }


def input_file(model: str) -> bytes:
    rows = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"{i}"}]},
        }
        for i in range(LINES)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def native_config(directory: Path, provider: FakeUpstream, namespace: str) -> Path:
    """The test models and the two native groups, all on `provider`."""
    base = provider.base_url
    return write_config(
        directory,
        base + "/v1",
        namespace,
        settings=settings(directory / "files"),
        extra_models=NATIVE.format(base=base),
    )


async def submit(sdk: AsyncOpenAI, rows: bytes) -> Batch:
    """A batch of `rows` for /v1/chat/completions (uploaded, then created)."""
    uploaded = await sdk.files.create(file=("in.jsonl", rows), purpose="batch")
    return await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


async def completed(
    sdk: AsyncOpenAI, batch_id: str, timeout_s: float
) -> tuple[Batch, list[dict[str, Any]]]:
    """The batch, once it completed (bounded), and the lines of its output file."""
    done = await finished(sdk, batch_id, timeout_s=timeout_s)
    assert done.status == "completed", done
    return done, await lines_of(sdk, done.output_file_id)


def provider_calls(provider: FakeUpstream, path: str) -> int:
    return sum(1 for r in provider.requests if r.method == "POST" and r.path == path)


@pytest.mark.parametrize("model", list(PROVIDERS))
async def test_kill_9_of_the_front_door_polling_a_native_batch_resumes_without_resubmitting(
    namespace: str, tmp_path: Path, clients: Clients, model: str
) -> None:
    create_path, line_path = PROVIDERS[model]
    async with FakeUpstream(batch_delay_s=4.0) as provider:
        config = native_config(tmp_path, provider, namespace)
        async with front_door_handover(config, tmp_path) as handover:
            urls = handover.urls
            sdk = clients(urls[0], KEY_A)
            batch = await submit(sdk, input_file(model))
            # Handed over and polled at least once: the provider's id is in the record.
            await eventually(
                lambda: sum(1 for r in provider.requests if r.method == "GET") >= 2,
                what="the front door polling the provider",
                timeout_s=30,
            )
            await handover.kill_doomed()
            assert provider_calls(provider, line_path) == 0  # still queued there
            async with handover.survivor() as survivor:
                done, output = await completed(clients(urls[1], KEY_A), batch.id, 60)
                assert_each_once(output, (f"req-{i}" for i in range(LINES)))
                assert "resumes: polling its provider batch" in survivor.output()
        assert provider_calls(provider, create_path) == 1
        assert provider_calls(provider, line_path) == LINES


@pytest.mark.parametrize("model", list(PROVIDERS))
async def test_kill_9_before_the_create_call_is_answered_adopts_the_batch_it_made(
    namespace: str, tmp_path: Path, clients: Clients, model: str
) -> None:
    """The provider made the batch, and the runner died before it read the answer: the
    next runner finds that batch (OpenAI's by our id in its metadata, Anthropic's by its
    size and time, which carries nothing of ours) and submits none again."""
    create_path, line_path = PROVIDERS[model]
    async with FakeUpstream(batch_delay_s=1.0, batch_answer_delay_s=60.0) as provider:
        config = native_config(tmp_path, provider, namespace)
        async with front_door_handover(config, tmp_path) as handover:
            urls = handover.urls
            sdk = clients(urls[0], KEY_A)
            batch = await submit(sdk, input_file(model))
            # The provider has the batch; its answer is not sent yet.
            await eventually(
                lambda: provider_calls(provider, create_path) == 1,
                what="the provider making the batch",
                timeout_s=30,
            )
            await handover.kill_doomed()
            async with handover.survivor() as survivor:
                done, output = await completed(clients(urls[1], KEY_A), batch.id, 60)
                assert_each_once(output, (f"req-{i}" for i in range(LINES)))
                assert "found its provider batch" in survivor.output()
        assert provider_calls(provider, create_path) == 1
        assert provider_calls(provider, line_path) == LINES


async def test_kill_9_of_the_front_door_running_a_split_batch_loses_and_repeats_no_line(
    namespace: str, tmp_path: Path, clients: Clients
) -> None:
    """A batch of three groups (OpenAI's batch API, Anthropic's, the lane) split in parts;
    the front door running them all is killed, the next one finishes each part and joins
    them: every custom_id once, each provider batch made once."""
    models = ("gpt-native", "claude-native", "gpt-test")
    rows = b"".join(input_file(model).replace(b'"req-', f'"{model}-'.encode()) for model in models)
    async with FakeUpstream(batch_delay_s=3.0) as provider:
        config = native_config(tmp_path, provider, namespace)
        async with front_door_handover(config, tmp_path) as handover:
            urls = handover.urls
            sdk = clients(urls[0], KEY_A)
            batch = await submit(sdk, rows)
            await eventually(
                lambda: (
                    provider_calls(provider, "/v1/batches") == 1
                    and provider_calls(provider, "/v1/messages/batches") == 1
                ),
                what="both native parts handed over",
                timeout_s=30,
            )
            await handover.kill_doomed()
            async with handover.survivor():
                done, output = await completed(clients(urls[1], KEY_A), batch.id, 90)
                expected = [f"{model}-{i}" for model in models for i in range(LINES)]
                assert_each_once(output, expected)
                assert done.request_counts is not None
                assert done.request_counts.completed == 3 * LINES
        assert provider_calls(provider, "/v1/batches") == 1
        assert provider_calls(provider, "/v1/messages/batches") == 1
        assert provider_calls(provider, "/v1/messages") == LINES
