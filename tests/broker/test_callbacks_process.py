"""The callbacks process (broker/callbacks_process.py), with real processes: a `switchboard
serve`, a `worker --callbacks-standby` that serves the requests, and a `worker --callbacks`
that delivers the spans, against the test's OTLP/HTTP receiver. The serving worker encodes
nothing while the callbacks process keeps up; when that process is killed (-9), the worker
takes the delivery over after the stand-by, and every request's spans arrive."""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import textwrap
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from broker.cli import main
from broker.config.loader import load_config
from broker.supervisor import callback_processes
from tests.broker.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.broker.processes import (
    Process,
    chat_load,
    child_pids,
    cmdline,
    free_port,
    switchboard,
    wait_ready,
    write_config,
)
from tests.redis_helpers import REDIS_URL
from tests.scrape import scrape_url
from tests.waiting import eventually
from workers.redis_streams import Keys, TenancyKeys
from workers.testing.server import FakeUpstream

# Front door (the consumer's), queue wait, provider call, relay (the front door's).
SPANS_EACH = 4
OTEL = textwrap.dedent(
    """\
    litellm_settings:
      callbacks: ["otel"]
    callback_settings:
      otel: {{endpoint: "{url}", service_name: sb-callbacks}}
    """
)


class Service:
    def __init__(self, url: str, door: Process, worker: Process, callbacks: Process) -> None:
        self.url = url
        self.door = door
        self.worker = worker
        self.callbacks = callbacks
        self.worker_metrics = ""
        self.callbacks_metrics = ""


@asynccontextmanager
async def service(
    fake: FakeUpstream, namespace: str, tmp_path: Path, receiver: OtlpReceiver
) -> AsyncIterator[Service]:
    config = write_config(
        tmp_path, fake.base_url + "/v1", namespace, general=OTEL.format(url=receiver.url)
    )
    port, worker_port, callbacks_port = free_port(), free_port(), free_port()
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": REDIS_URL}
    given = ("--config", str(config))
    async with AsyncExitStack() as stack:
        door = await stack.enter_async_context(
            switchboard("serve", *given, "--port", str(port), **run)
        )
        worker = await stack.enter_async_context(
            switchboard(
                "worker",
                *given,
                "--callbacks-standby",
                "--metrics-port",
                str(worker_port),
                name="worker",
                **run,
            )
        )
        callbacks = await stack.enter_async_context(
            switchboard(
                "worker",
                *given,
                "--callbacks",
                "--metrics-port",
                str(callbacks_port),
                name="callbacks",
                **run,
            )
        )
        found = Service(f"http://127.0.0.1:{port}", door, worker, callbacks)
        found.worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
        found.callbacks_metrics = f"http://127.0.0.1:{callbacks_port}/metrics"
        await wait_ready(found.url, workers=1, processes=(door, worker, callbacks))
        # Its /metrics answers once its consumer is about to read: before that, events
        # would wait, and past the stand-by the worker would read them (a slow start on a
        # busy machine is not what these tests are about).
        await eventually(
            lambda: _answers(found.callbacks_metrics), what="the callbacks process's /metrics"
        )
        yield found


async def _answers(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def _delivered(metrics_url: str) -> float:
    """What this process's consumer handed the otel export: its delivered count (0 when it
    never delivered)."""
    async with aiohttp.ClientSession() as http:
        page = await scrape_url(http, metrics_url)
    found = page.get("switchboard_callback_deliveries_total", callback="otel", outcome="delivered")
    return found or 0.0


def _each_request_once(spans: list[ReceivedSpan], answered: list[str]) -> None:
    unique = {(s.trace_id, s.span_id): s for s in spans}.values()
    by_trace = collections.Counter(s.trace_id for s in unique)
    assert len(by_trace) == len(answered) and set(by_trace.values()) == {SPANS_EACH}
    served = {s.attributes["switchboard.request_id"] for s in spans if s.name == "chat gpt-test"}
    assert served == set(answered)


async def _consumers(redis: Redis, namespace: str) -> list[str]:
    """The callbacks group's consumers, by name."""
    stream = Keys(namespace).tenancy.ledger
    found: Any = await redis.xinfo_consumers(stream, TenancyKeys.CALLBACKS_GROUP)
    return [str(c["name"], "utf-8") if isinstance(c["name"], bytes) else c["name"] for c in found]


async def test_the_callbacks_process_delivers_and_the_serving_worker_encodes_nothing(
    fake: FakeUpstream, namespace: str, tmp_path: Path, redis: Redis
) -> None:
    async with OtlpReceiver() as receiver, service(fake, namespace, tmp_path, receiver) as sb:
        answered: list[str] = []
        await chat_load(sb.url, 40, answered, clients=4)
        await eventually(
            lambda: len(receiver.spans) >= SPANS_EACH * len(answered),
            what="every request's spans",
            timeout_s=30,
        )
        assert await _delivered(sb.callbacks_metrics) > 0
        assert await _delivered(sb.worker_metrics) == 0, "the serving worker stood by"
        # A SIGTERM drains what is on the stream and ends it cleanly. Every start is a
        # consumer of its own, so a stopped one leaves the group, unless it is the last (the
        # worker, standing by, may never have read).
        before = await _consumers(redis, namespace)
        assert any(name.startswith("callbacks-") for name in before)
        assert await sb.callbacks.stop() == 0
        assert len(await _consumers(redis, namespace)) == max(1, len(before) - 1)
    assert len(receiver.spans) == SPANS_EACH * len(answered)
    assert len({(s.trace_id, s.span_id) for s in receiver.spans}) == len(receiver.spans)
    _each_request_once(receiver.spans, answered)
    assert {s.service for s in receiver.spans} == {"sb-callbacks"}


async def test_kill_9_of_the_callbacks_process_loses_no_span(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    async with OtlpReceiver() as receiver, service(fake, namespace, tmp_path, receiver) as sb:
        answered: list[str] = []
        load = asyncio.create_task(chat_load(sb.url, 80, answered, clients=4, pause_s=0.1))
        await eventually(lambda: len(receiver.spans) >= 20, what="the first spans")
        sb.callbacks.send(signal.SIGKILL)
        assert await sb.callbacks.wait() == -signal.SIGKILL
        await asyncio.wait_for(load, 120)
        # The serving worker, standing by, takes the delivery over (and the events the
        # killed consumer held, once they are idle long enough to claim).
        await eventually(
            lambda: (
                len({(s.trace_id, s.span_id) for s in receiver.spans}) >= SPANS_EACH * len(answered)
            ),
            what="every request's spans, after the kill",
            timeout_s=90,
        )
        assert await _delivered(sb.worker_metrics) > 0
    assert len(answered) == 80
    _each_request_once(receiver.spans, answered)
    # A batch the killed process had exported but not yet acknowledged is exported again
    # by the taker, with the same span ids (a collector dedupes on them); nothing else twice.
    repeats = len(receiver.spans) - len({(s.trace_id, s.span_id) for s in receiver.spans})
    assert repeats <= SPANS_EACH * 200


async def test_up_runs_the_callbacks_process_and_its_workers_stand_by(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    async with OtlpReceiver() as receiver:
        general = OTEL.format(url=receiver.url)
        config = write_config(tmp_path, fake.base_url + "/v1", namespace, general=general)
        port = free_port()
        args = ("up", "--config", str(config), "--port", str(port))
        async with switchboard(*args, directory=tmp_path, redis_url=REDIS_URL) as up:
            url = f"http://127.0.0.1:{port}"
            await wait_ready(url, workers=2, processes=(up,))  # the worker and the batch worker
            commands = [cmdline(pid) for pid in child_pids(up.pid)]
            workers = [c for c in commands if " worker " in c and "--callbacks " not in c]
            assert len(workers) == 2 and all("--callbacks-standby" in c for c in workers)
            assert len([c for c in commands if " worker --callbacks " in c]) == 1
            answered: list[str] = []
            await chat_load(url, 12, answered, clients=4)
            await eventually(
                lambda: len(receiver.spans) >= SPANS_EACH * len(answered),
                what="every request's spans",
            )
            assert await up.stop() == 0
    _each_request_once(receiver.spans, answered)


@pytest.mark.parametrize(
    ("general", "wanted", "started"),
    [
        (OTEL.format(url="http://127.0.0.1:9/v1/traces"), 1, 1),
        (OTEL.format(url="http://127.0.0.1:9/v1/traces"), 0, 0),
        ("", 1, 0),  # no callback: nothing would reach it
    ],
)
def test_up_starts_a_callbacks_process_only_when_the_config_names_a_callback(
    tmp_path: Path, general: str, wanted: int, started: int
) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9/v1", "ns", general=general)
    config = load_config(path, {})
    args = argparse.Namespace(callback_workers=wanted)
    assert callback_processes(config, args) == started


async def test_a_callbacks_process_on_a_config_without_callbacks_refuses_to_start(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, fake.base_url + "/v1", namespace)
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": REDIS_URL}
    async with switchboard("worker", "--config", str(config), "--callbacks", **run) as process:
        assert await process.wait() == 2
        assert "the config names no callback to deliver" in process.output()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["worker", "--callbacks", "--callbacks-standby"], "--callbacks-standby does not apply"),
        (["worker", "--callbacks", "--concurrency", "4"], "--concurrency does not apply"),
        (["up", "--callback-workers", "-1"], "--callback-workers must be 0 or more"),
        (["worker", "--callbacks", "--batches"], "not allowed with argument"),
    ],
)
def test_flags_a_role_would_ignore_are_refused(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--config", str(tmp_path / "config.yaml")])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err
