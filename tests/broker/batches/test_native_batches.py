"""Native batches (issue #20) through the official openai SDK: a batch whose model group
has `model_info.batch_mode: native` goes to the provider's own batch API (OpenAI's Files
and Batch APIs, Anthropic's Message Batches, both fakes), and comes back as our output
and error files in OpenAI's line format, every custom_id once, at the batch price."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from broker.config import ConfigError
from broker.config.loader import load_config_text
from tests.broker.batches.sdk import Clients, batch_config, clients, finished, lines_of
from tests.broker.harness import config_text, service
from tests.waiting import eventually
from workers import pricing
from workers.testing.server import FakeUpstream
from workers.wire import Usage

__all__ = ["clients"]

NATIVE_MODELS = """\
- model_name: gpt-native
  litellm_params:
    model: openai/gpt-4o-mini
    api_base: {base}/v1
    api_key: sk-native
  model_info:
    batch_mode: native
- model_name: gpt-native-slow
  litellm_params:
    model: openai/gpt-4o-mini~latency=0.05
    api_base: {base}/v1
    api_key: sk-native
  model_info:
    mode: batch
- model_name: claude-native
  litellm_params:
    model: anthropic/claude-haiku-4-5
    api_base: {base}
    api_key: sk-ant-native
  model_info:
    batch_mode: native
"""
THINKING = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture
async def provider() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(batch_delay_s=0.3) as fake:
        yield fake


def native_config(provider: FakeUpstream, namespace: str, tmp_path: Path) -> Any:
    return batch_config(
        provider,
        namespace,
        tmp_path / "files",
        extra_models=NATIVE_MODELS.format(base=provider.base_url),
        native_poll_s=0.1,
        native_max_poll_s=0.3,
    )


def lines(count: int, model: str, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [{"role": "user", "content": f"hi {i}"}],
                **extra,
            },
        }
        for i in range(count)
    ]


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


async def submit(sdk: Any, rows: list[dict[str, Any]]) -> str:
    uploaded = await sdk.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return str(batch.id)


def calls(provider: FakeUpstream, method: str, path: str) -> list[Any]:
    return [r for r in provider.requests if r.method == method and r.path == path]


def batch_cost(output: list[dict[str, Any]], provider: str, model: str) -> float:
    price = pricing.lookup_price(provider, model)
    total = 0.0
    for line in output:
        usage = line["response"]["body"]["usage"]
        found = Usage(
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            total_tokens=usage["total_tokens"],
        )
        total += pricing.cost_of(found, price).cost_usd or 0.0
    return total / 2


async def test_a_native_openai_batch_runs_at_the_provider_and_maps_back(
    provider: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = native_config(provider, namespace, tmp_path)
    rows = lines(30, "gpt-native")
    # OpenAI's adapter refuses `thinking`: the line fails here, as it would interactively.
    rows.append(lines(1, "gpt-native", thinking=THINKING)[0] | {"custom_id": "refused"})
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        batch_id = await submit(sdk, rows)
        done = await finished(sdk, batch_id)
        assert done.status == "completed", done
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (30, 1)
        output = await lines_of(sdk, done.output_file_id)
        assert sorted(line["custom_id"] for line in output) == sorted(f"req-{i}" for i in range(30))
        first = output[0]
        assert first["response"]["status_code"] == 200
        assert first["response"]["body"]["object"] == "chat.completion"
        (refused,) = await lines_of(sdk, done.error_file_id)
        assert refused["custom_id"] == "refused"
        assert refused["response"]["status_code"] == 400
        # Half the interactive price of what the lines used.
        cost = (done.model_extra or {})["cost_usd"]
        assert cost == pytest.approx(batch_cost(output, "openai", "gpt-4o-mini"))
    # One upload and one batch at the provider; its lines carry the deployment's model.
    (upload,) = calls(provider, "POST", "/v1/files")
    (created,) = calls(provider, "POST", "/v1/batches")
    assert created.json["metadata"] == {"switchboard_batch_id": batch_id}
    assert created.headers["Authorization"] == "Bearer sk-native"
    sent = [r.json for r in calls(provider, "POST", "/v1/chat/completions")]
    assert len(sent) == 30 and {body["model"] for body in sent} == {"gpt-4o-mini"}


async def test_a_native_anthropic_batch_is_translated_both_ways(
    provider: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = native_config(provider, namespace, tmp_path)
    rows = lines(12, "claude-native", max_tokens=100)
    # A prefill ending in whitespace: Anthropic refuses it (a 400 from the provider).
    prefill = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure "}]
    rows.append(
        {**rows[0], "custom_id": "prefill", "body": {**rows[0]["body"], "messages": prefill}}
    )
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        batch_id = await submit(sdk, rows)
        done = await finished(sdk, batch_id)
        assert done.status == "completed", done
        output = await lines_of(sdk, done.output_file_id)
        assert sorted(line["custom_id"] for line in output) == sorted(f"req-{i}" for i in range(12))
        body = output[0]["response"]["body"]
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
        assert body["usage"]["prompt_tokens"] > 0
        (failed,) = await lines_of(sdk, done.error_file_id)
        assert failed["custom_id"] == "prefill"
        assert failed["response"]["status_code"] == 400
        assert "error" in failed["response"]["body"]
        assert (done.model_extra or {})["cost_usd"] > 0
    (created,) = calls(provider, "POST", "/v1/messages/batches")
    requests = created.json["requests"]
    assert len(requests) == 13
    params = requests[0]["params"]
    assert params["model"] == "claude-haiku-4-5" and params["max_tokens"] == 100
    assert params["messages"] == [{"role": "user", "content": "hi 0"}]
    assert created.headers["x-api-key"] == "sk-ant-native"


async def test_a_native_batch_cancelled_midway_keeps_what_the_provider_finished(
    provider: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = native_config(provider, namespace, tmp_path)
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        batch_id = await submit(sdk, lines(200, "gpt-native-slow"))
        await eventually(
            lambda: len(calls(provider, "POST", "/v1/chat/completions")) >= 10,
            what="the provider running lines",
            timeout_s=20,
        )
        await sdk.batches.cancel(batch_id)
        done = await finished(sdk, batch_id)
        assert done.status == "cancelled", done
        output = await lines_of(sdk, done.output_file_id)
        counted = Counter(line["custom_id"] for line in output)
        assert 10 <= len(counted) < 200 and max(counted.values()) == 1
        assert done.request_counts is not None
        assert done.request_counts.completed == len(output)
        assert done.error_file_id is None  # the lines that never ran are left out
    (cancel,) = [r for r in provider.requests if r.path.endswith("/cancel")]
    assert cancel.method == "POST"


async def test_a_batch_of_a_queue_group_stays_on_the_batch_lane(
    provider: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = native_config(provider, namespace, tmp_path)
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        done = await finished(sdk, await submit(sdk, lines(5, "gpt-test")))
        assert done.status == "completed"
    assert not calls(provider, "POST", "/v1/batches")


def test_native_mode_needs_a_provider_with_a_batch_api() -> None:
    groq = """\
- model_name: groq-native
  litellm_params:
    model: groq/llama-3.1-8b-instant
    api_key: sk-fake
  model_info:
    batch_mode: native
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(config_text("http://127.0.0.1:9/v1", "ns", extra_models=groq))
    assert "batch_mode" in str(caught.value) and "groq" in str(caught.value)


async def test_a_native_batch_past_its_window_ends_expired_with_what_finished(
    provider: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = native_config(provider, namespace, tmp_path)
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        uploaded = await sdk.files.create(
            file=("in.jsonl", jsonl(lines(200, "gpt-native-slow"))), purpose="batch"
        )
        batch = await sdk.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="3s",  # type: ignore[arg-type]  # ours may be shorter than 24h
        )
        done = await finished(sdk, batch.id)
        assert done.status == "expired", done
        output = await lines_of(sdk, done.output_file_id)
        expired = await lines_of(sdk, done.error_file_id)
        ids = Counter(line["custom_id"] for line in output + expired)
        assert sorted(ids) == sorted(f"req-{i}" for i in range(200))
        assert max(ids.values()) == 1
        assert output and expired
        assert {line["error"]["code"] for line in expired} == {"batch_expired"}
    # The window's end was forwarded to the provider as a cancel.
    assert [r for r in provider.requests if r.path.endswith("/cancel")]


async def test_messages_lines_go_to_anthropic_as_they_are_and_come_back_as_messages(
    provider: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = native_config(provider, namespace, tmp_path)
    rows = [
        {
            "custom_id": f"m-{i}",
            "method": "POST",
            "url": "/v1/messages",
            "body": {
                "model": "claude-native",
                "max_tokens": 50,
                "system": "be brief",
                "messages": [{"role": "user", "content": f"hi {i}"}],
            },
        }
        for i in range(5)
    ]
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        uploaded = await sdk.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/messages",  # type: ignore[arg-type]  # Switchboard serves it too
            completion_window="24h",
        )
        done = await finished(sdk, batch.id)
        assert done.status == "completed", done
        output = await lines_of(sdk, done.output_file_id)
        assert sorted(line["custom_id"] for line in output) == [f"m-{i}" for i in range(5)]
        message = output[0]["response"]["body"]
        assert message["type"] == "message" and message["content"][0]["type"] == "text"
        assert (done.model_extra or {})["cost_usd"] > 0
    (created,) = calls(provider, "POST", "/v1/messages/batches")
    params = created.json["requests"][0]["params"]
    assert params["system"] == "be brief" and params["model"] == "claude-haiku-4-5"


async def test_a_native_batch_waiting_on_its_provider_leaves_the_runners_to_lane_batches(
    namespace: str, tmp_path: Path, clients: Clients
) -> None:
    async with FakeUpstream(batch_delay_s=60.0) as slow_provider:
        config = batch_config(
            slow_provider,
            namespace,
            tmp_path / "files",
            extra_models=NATIVE_MODELS.format(base=slow_provider.base_url),
            max_running=1,
            native_poll_s=0.1,
        )
        async with service(config, workers=1) as ([door], _):
            sdk = clients(door.url)
            native_id = await submit(sdk, lines(3, "gpt-native"))
            await eventually(
                lambda: bool(calls(slow_provider, "POST", "/v1/batches")),
                what="the native batch handed over",
                timeout_s=20,
            )
            lane = await finished(sdk, await submit(sdk, lines(3, "gpt-test")))
            assert lane.status == "completed", lane
            still = await sdk.batches.retrieve(native_id)
            assert still.status == "in_progress"


async def test_result_files_larger_than_the_reply_cap_are_read_line_by_line(
    provider: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = native_config(provider, namespace, tmp_path)
    # The cap bounds one response; the provider's output file holds 40 of them.
    settings = msgspec.structs.replace(config.switchboard_settings, max_reply_bytes=4096)
    config = msgspec.structs.replace(config, switchboard_settings=settings)
    async with service(config, workers=1) as ([door], _):
        sdk = clients(door.url)
        done = await finished(sdk, await submit(sdk, lines(40, "gpt-native")))
        assert done.status == "completed", done
        output = await lines_of(sdk, done.output_file_id)
        assert len(output) == 40 and sum(len(json.dumps(line)) for line in output) > 4096
