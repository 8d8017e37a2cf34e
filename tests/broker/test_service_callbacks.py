"""The service's callbacks (litellm_settings.success_callback / failure_callback /
callbacks, callback_settings) through a real front door, Redis and worker, against the
fake upstream: every finished request reaches them once, off the request path."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from broker.config import ConfigError
from broker.hooks import FRONT_HOOKS, service_hooks
from tests.broker import callback_targets
from tests.broker.harness import make_config, post, read_sse, service
from tests.local_http import serve
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello gateway"}]
FAILING = """\
- model_name: failing
  litellm_params:
    model: openai/gpt-4o-mini~status=429
    api_base: {base}
    api_key: sk-fake
"""


@pytest.fixture(autouse=True)
def clean_targets() -> Iterator[None]:
    callback_targets.proxy_handler_instance.events.clear()
    callback_targets.seen_by_function.clear()
    yield


def _config(fake: FakeUpstream, namespace: str, jsonl: Path, *, redact: bool = False) -> Any:
    base = fake.base_url + "/v1"
    general = textwrap.dedent(
        f"""\
        litellm_settings:
          success_callback: ["jsonl", "tests.broker.callback_targets.log_success"]
          failure_callback: ["jsonl"]
          callbacks: ["tests.broker.callback_targets.proxy_handler_instance"]
          turn_off_message_logging: {"true" if redact else "false"}
        callback_settings:
          jsonl:
            path: {jsonl}
        """
    )
    return make_config(base, namespace, general=general, extra_models=FAILING.format(base=base))


async def _flush(workers: list[Any]) -> None:
    """Wait until the callbacks group delivered every event on the stream."""
    for running in workers:
        await running.worker.callback_consumer.flush()


async def test_every_finished_request_reaches_the_callbacks_once(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    jsonl = tmp_path / "calls.jsonl"
    config = _config(fake, namespace, jsonl)
    async with service(config) as ([door], workers), aiohttp.ClientSession() as http:
        status, body, response = await post(
            http, door.url, {"model": "gpt-test", "messages": HELLO, "metadata": {"app": "x"}}
        )
        assert status == 200
        request_id = response.headers["x-request-id"]
        stream_body = {"model": "gpt-test", "messages": HELLO, "stream": True}
        async with http.post(door.url + "/v1/chat/completions", json=stream_body) as streamed:
            events = await read_sse(streamed)
            stream_id = streamed.headers["x-request-id"]
        async with http.post(
            door.url + "/v1/embeddings", json={"model": "embed-test", "input": "hi"}
        ) as embedded:
            assert embedded.status == 200
        status, _, _ = await post(http, door.url, {"model": "failing", "messages": HELLO})
        assert status == 429
        await _flush(workers)
    lines = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    by_id = {line["id"]: line for line in lines}
    assert len(lines) == 4 == len(by_id)
    first = by_id[request_id]
    assert first["status"] == "success" and first["model_group"] == "gpt-test"
    assert first["model_id"] == "gpt-test[0]" and first["custom_llm_provider"] == "openai"
    assert first["response_cost"] > 0 and first["prompt_tokens"] > 0
    assert first["queue_time_ms"] >= 0 and first["metadata"]["app"] == "x"
    assert (
        first["response"]["choices"][0]["message"]["content"]
        == body["choices"][0]["message"]["content"]
    )
    # A stream is logged assembled, with the text the client read.
    text = "".join(
        orjson.loads(data)["choices"][0]["delta"].get("content") or ""
        for _, data in events
        if data != "[DONE]" and orjson.loads(data)["choices"]
    )
    assert by_id[stream_id]["stream"] is True
    assert by_id[stream_id]["response"]["choices"][0]["message"]["content"] == text
    assert [x["call_type"] for x in lines].count("embedding") == 1
    [failed] = [x for x in lines if x["status"] == "failure"]
    assert failed["status_code"] == 429 and failed["model_group"] == "failing"
    # The import-path callbacks: a function in success_callback, a CustomLogger instance.
    assert len(callback_targets.seen_by_function) == 3
    kinds = sorted(kind for kind, *_ in callback_targets.proxy_handler_instance.events)
    assert kinds == ["failure", "success", "success", "success"]
    [(_, kwargs, _)] = [
        e for e in callback_targets.proxy_handler_instance.events if e[0] == "failure"
    ]
    assert kwargs["exception"].http_status == 429


async def test_message_logging_off_keeps_text_out_of_every_callback(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    jsonl = tmp_path / "calls.jsonl"
    config = _config(fake, namespace, jsonl, redact=True)
    async with service(config) as ([door], workers), aiohttp.ClientSession() as http:
        status, body, _ = await post(http, door.url, {"model": "gpt-test", "messages": HELLO})
        assert status == 200
        await _flush(workers)
    written = jsonl.read_text()
    assert "hello gateway" not in written
    assert body["choices"][0]["message"]["content"] not in written
    assert orjson.loads(written)["prompt_tokens"] > 0


def test_a_callback_that_cannot_be_imported_fails_the_start(
    fake: FakeUpstream, namespace: str
) -> None:
    general = "litellm_settings:\n  callbacks: [no_such_module.handler]\n"
    config = make_config(fake.base_url + "/v1", namespace, general=general)
    with pytest.raises(ConfigError, match="no_such_module"):
        service_hooks(config)
    general = "litellm_settings:\n  success_callback: [jsonl]\n"
    config = make_config(fake.base_url + "/v1", namespace, general=general)
    with pytest.raises(ConfigError, match="callback_settings.jsonl"):
        service_hooks(config)


async def test_answers_the_front_door_gives_itself_reach_the_callbacks(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    jsonl = tmp_path / "calls.jsonl"
    general = textwrap.dedent(
        f"""\
        litellm_settings:
          success_callback: ["jsonl"]
          failure_callback: ["jsonl"]
          cache: true
        callback_settings:
          jsonl: {{path: {jsonl}}}
        guardrails:
          - guardrail_name: no-codes
            litellm_params: {{guardrail: keywords, default_on: true, keywords: [codes]}}
        """
    )
    config = make_config(fake.base_url + "/v1", namespace, general=general)
    async with service(config) as ([door], workers), aiohttp.ClientSession() as http:
        for _ in range(50):
            _, _, response = await post(http, door.url, {"model": "gpt-test", "messages": HELLO})
            if response.headers["x-switchboard-cache"] == "hit":
                break
        hit_id = response.headers["x-request-id"]
        blocked = {"model": "gpt-test", "messages": [{"role": "user", "content": "the codes"}]}
        status, _, _ = await post(http, door.url, blocked)
        assert status == 400
        await door.app[FRONT_HOOKS].dispatcher.flush()  # onto the stream
        await _flush(workers)
    lines = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    by_id = {line["id"]: line for line in lines}
    hit = by_id[hit_id]
    assert hit["cache_hit"] is True and hit["response_cost"] == 0.0
    assert hit["status"] == "success" and hit["response"]["choices"]
    [refused] = [line for line in lines if line["status"] == "failure"]
    assert refused["error_code"] == "guardrail_blocked" and refused["status_code"] == 400
    # Every worker-served request logged once, not cached: cost counted there.
    served = [line for line in lines if line["status"] == "success" and not line["cache_hit"]]
    assert served and all(line["response_cost"] > 0 for line in served)


async def test_a_logging_only_guardrail_masks_what_the_callbacks_see_not_the_call(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    jsonl = tmp_path / "calls.jsonl"
    general = textwrap.dedent(
        f"""\
        litellm_settings:
          success_callback: ["jsonl"]
        callback_settings:
          jsonl: {{path: {jsonl}}}
        guardrails:
          - guardrail_name: pii-in-logs
            litellm_params: {{guardrail: pii, mode: logging_only, default_on: true}}
        """
    )
    config = make_config(fake.base_url + "/v1", namespace, general=general)
    text = "mail ann@example.com please"
    async with service(config) as ([door], workers), aiohttp.ClientSession() as http:
        status, _, _ = await post(
            http, door.url, {"model": "gpt-test", "messages": [{"role": "user", "content": text}]}
        )
        assert status == 200
        await _flush(workers)
    assert fake.requests[-1].json["messages"][0]["content"] == text  # the call is untouched
    [logged] = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    assert logged["messages"][0]["content"] == "mail [EMAIL] please"


class WebhookCollector:
    """A local collector the `webhook` built-in POSTs each call's JSON to."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.url = ""
        self._serving = contextlib.AsyncExitStack()

    async def _ingest(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.raw.append(raw)
        self.events.append(orjson.loads(raw))
        return web.Response(status=204)

    async def __aenter__(self) -> WebhookCollector:
        app = web.Application()
        app.router.add_post("/ingest", self._ingest)
        self.url = f"{await self._serving.enter_async_context(serve(app))}/ingest"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._serving.aclose()


JSON = "application/json"
MASTER = "sk-master-callbacks-0123"
TEAM_KEY = "sk-team-a-callbacks-0123456789"
STOLEN = "sk-not-a-key-of-this-gateway-42"


async def test_refusals_before_queueing_reach_the_failure_callbacks(
    fake: FakeUpstream, namespace: str
) -> None:
    async with WebhookCollector() as collector:
        general = textwrap.dedent(
            f"""\
            general_settings:
              master_key: {MASTER}
            litellm_settings:
              failure_callback: ["webhook"]
            callback_settings:
              webhook: {{url: "{collector.url}", retry_for_s: 30}}
            """
        )
        keys = f"[{{alias: team-a, key: {TEAM_KEY}, models: [gpt-test]}}]"
        config = make_config(
            fake.base_url + "/v1", namespace, general=general, settings={"api_keys": keys}
        )
        refusals: list[tuple[str, dict[str, Any], int]] = [
            (STOLEN, {"model": "gpt-test", "messages": HELLO}, 401),
            (TEAM_KEY, {"model": "gpt-test", "messages": "not a list", "stream": True}, 400),
            (TEAM_KEY, {"model": "embed-test", "messages": HELLO}, 403),
        ]
        async with service(config) as ([door], workers), aiohttp.ClientSession() as http:
            for key, body, expected in refusals:
                status, _, _ = await post(
                    http, door.url, body, headers={"Authorization": f"Bearer {key}"}
                )
                assert status == expected
            # Hostile bodies: not JSON, not an object, nested past any decoder.
            for raw in (b"\xff\xfe{", b"[1, 2]", b"[" * 5000 + b"]" * 5000):
                async with http.post(
                    door.url + "/v1/chat/completions",
                    data=raw,
                    headers={"Authorization": f"Bearer {TEAM_KEY}", "Content-Type": JSON},
                ) as reply:
                    assert reply.status == 400
            await door.app[FRONT_HOOKS].dispatcher.flush()  # onto the stream
            await _flush(workers)
        assert fake.requests == []  # none of them was queued
    hostile = collector.events[3:]
    assert len(hostile) == 3 and {e["status_code"] for e in hostile} == {400}
    assert all(e["model_group"] == "" for e in hostile)
    collector.events = collector.events[:3]
    by_status = {event["status_code"]: event for event in collector.events}
    assert len(collector.events) == 3 and set(by_status) == {401, 400, 403}
    assert all(event["status"] == "failure" for event in collector.events)
    # A bad key: nobody to name, nothing of its body logged.
    unknown = by_status[401]
    assert unknown["error_code"] == "invalid_api_key"
    assert unknown["metadata"]["user_api_key_alias"] is None and not unknown["messages"]
    # A key that authenticated: its alias, the model, the reason.
    invalid = by_status[400]
    assert invalid["metadata"]["user_api_key_alias"] == "team-a"
    assert invalid["model_group"] == "gpt-test" and invalid["stream"] is True
    assert invalid["error_code"] and "messages" in invalid["error_str"]
    denied = by_status[403]
    assert denied["error_code"] == "key_model_access_denied"
    assert denied["metadata"]["user_api_key_alias"] == "team-a"
    # No secret anywhere in what the collector got.
    for raw in collector.raw:
        for secret in (MASTER, TEAM_KEY, STOLEN):
            assert secret.encode() not in raw
