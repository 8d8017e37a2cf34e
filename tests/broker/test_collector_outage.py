"""A collector outage under load, with the service as users run it (issue #19): a real
`switchboard serve` and `switchboard worker` on the test Redis, and the test's OTLP/HTTP
receiver on a port it holds throughout, stopped (its port refusing connections) while requests keep
coming, then started again. Requests are answered throughout (tracing is off their path);
the worker-made spans and the front door's relay span (its record) wait on the
finished-request stream, and each request's four spans arrive once the collector is back:
every one, none twice."""

from __future__ import annotations

import asyncio
import collections
import textwrap
from pathlib import Path
from typing import Any

from tests.broker.otlp_receiver import OtlpReceiver
from tests.broker.processes import chat_load, free_port, switchboard, wait_ready, write_config
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

REQUESTS = 60
CLIENTS = 6
# Front door (the consumer's), queue wait, provider call, relay (the front door's).
SPANS_EACH = 4
DOWN_FOR_S = 8.0


async def test_a_collector_down_under_load_gets_every_span_once_it_is_back(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    receiver = OtlpReceiver(restartable=True)  # its port stays ours while it is down
    await receiver.start()
    general = textwrap.dedent(
        f"""\
        litellm_settings:
          callbacks: ["otel"]
        callback_settings:
          otel: {{endpoint: "{receiver.url}", service_name: sb-outage}}
        """
    )
    config = write_config(tmp_path, fake.base_url + "/v1", namespace, general=general)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": REDIS_URL}
    try:
        async with (
            switchboard("serve", "--config", str(config), "--port", str(port), **run) as door,
            switchboard("worker", "--config", str(config), name="worker", **run) as worker,
        ):
            await wait_ready(url, workers=1, processes=(door, worker))
            answered: list[str] = []
            # A steady load across the outage.
            load = asyncio.create_task(
                chat_load(url, REQUESTS, answered, clients=CLIENTS, pause_s=0.1)
            )
            await eventually(lambda: len(answered) >= 10, what="the first answers")
            await receiver.stop()  # the collector goes down, mid-load
            down_at = len(answered)
            await asyncio.sleep(DOWN_FOR_S)
            assert len(answered) > down_at + 10, "requests kept being answered meanwhile"
            # What was answered while it was down waits on the stream, not in a process.
            assert len(receiver.spans) < SPANS_EACH * (down_at + 10)
            await receiver.start()  # back, on the same port
            await asyncio.wait_for(load, 120)
            assert len(answered) == REQUESTS
            await eventually(
                lambda: len(receiver.spans) >= SPANS_EACH * REQUESTS,
                what="every request's spans",
                timeout_s=90,
            )
            await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
    finally:
        await receiver.close()
    spans = receiver.spans
    # Each request's four spans, once.
    assert len(spans) == SPANS_EACH * REQUESTS
    assert len({(s.trace_id, s.span_id) for s in spans}) == len(spans)
    by_trace = collections.Counter(s.trace_id for s in spans)
    assert len(by_trace) == REQUESTS and set(by_trace.values()) == {SPANS_EACH}
    served = [s.attributes["switchboard.request_id"] for s in spans if s.name == "chat gpt-test"]
    assert sorted(served) == sorted(answered)
    assert {s.service for s in spans} == {"sb-outage"}
