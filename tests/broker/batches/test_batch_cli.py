"""`switchboard batch run` against a running service: progress on stderr, OpenAI's output
format in the file named, and a run interrupted then started again follows the same batch."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from broker.batch_cli import ENDED, Client, run
from tests.broker.batches.sdk import KEY_A, Clients, batch_config, chat_lines, clients
from tests.broker.harness import service
from tests.broker.processes import write_config
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

__all__ = ["clients"]

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))
# The CLI starts as a terminal starts a foreground job: SIGINT at its default. A shell without
# job control starts background jobs with SIGINT ignored, and an ignored signal stays ignored
# across fork and exec (Python then installs no KeyboardInterrupt handler, asyncio.run none
# either): under `tests/run &` pytest and every child it starts ignore SIGINT, and the
# interrupted run below would go on to the end and exit 0.
DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DEFAULT_SIGINT,
        SWITCHBOARD,
        "batch",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str]:
    async with asyncio.timeout(90):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def first_progress(process: asyncio.subprocess.Process) -> str:
    """stderr up to the first progress line: the CLI is following a batch that has not ended
    (the service, in this process, moves it on only when the test yields)."""
    assert process.stderr is not None
    shown = ""
    async with asyncio.timeout(30):
        while line := (await process.stderr.readline()).decode():
            shown += line
            if line.startswith("["):
                assert not any(f", {status}" in line for status in ENDED), shown
                return shown
    raise AssertionError(f"the CLI ended before showing progress:\n{shown}")


def custom_ids(path: Path) -> list[str]:
    return sorted(json.loads(line)["custom_id"] for line in path.read_text().splitlines())


async def test_batch_run_writes_openai_output_and_shows_progress(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files")
    source = tmp_path / "input.jsonl"
    source.write_bytes(chat_lines(30))
    output = tmp_path / "out.jsonl"
    async with service(config, workers=1) as ([door], _):
        process = await start_cli(
            "run", str(source), "--output", str(output), "--url", door.url, "--key", KEY_A
        )
        code, stderr = await finish(process)
    assert code == 0, stderr
    assert custom_ids(output) == sorted(f"req-{i}" for i in range(30))
    line = json.loads(output.read_text().splitlines()[0])
    assert line["response"]["status_code"] == 200 and line["error"] is None
    assert "30/30 done, 0 failed" in stderr and "/s, ETA" in stderr
    assert "completed: 30 completed, 0 failed" in stderr
    assert not output.with_name("out.jsonl.batch").exists()


async def test_an_interrupted_run_follows_the_same_batch_when_started_again(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files", window=4)
    source = tmp_path / "input.jsonl"
    source.write_bytes(chat_lines(20, model="slow"))
    output = tmp_path / "out.jsonl"
    note = tmp_path / "out.jsonl.batch"
    args = ("run", str(source), "--output", str(output), "--key", KEY_A)
    async with service(config, workers=1) as ([door], _):
        first = await start_cli(*args, "--url", door.url)
        progress = await first_progress(first)
        first.send_signal(signal.SIGINT)
        code, stderr = await finish(first)
        assert code == 130, progress + stderr
        assert "stopped; the batch goes on" in stderr
        batch_id = json.loads(note.read_text())["batch_id"]
        status = await start_cli("status", batch_id, "--url", door.url, "--key", KEY_A)
        async with asyncio.timeout(60):
            shown, _ = await status.communicate()
        assert json.loads(shown)["id"] == batch_id
        second = await start_cli(*args, "--url", door.url)
        code, stderr = await finish(second)
        assert code == 0, stderr
        assert "following batch" in stderr
        assert len((await clients(door.url).batches.list()).data) == 1
    assert custom_ids(output) == sorted(f"req-{i}" for i in range(20))


class CreatingSlowly(Client):
    """A service that answers POST /v1/batches only once `answer` is set."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", KEY_A)
        self.creating = asyncio.Event()
        self.answer = asyncio.Event()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        if (method, path) == ("POST", "/v1/files"):
            return {"id": "file-1"}
        if (method, path) == ("POST", "/v1/batches"):
            self.creating.set()
            await self.answer.wait()
            return {"id": "batch-1"}
        raise AssertionError(f"{method} {path}: not expected before the batch is noted")


async def test_a_ctrl_c_while_the_batch_is_created_waits_for_its_id_to_be_noted(
    tmp_path: Path,
) -> None:
    source = tmp_path / "input.jsonl"
    source.write_bytes(chat_lines(1))
    output = tmp_path / "out.jsonl"
    args = argparse.Namespace(
        input=source, output=output, endpoint="/v1/chat/completions", completion_window="24h"
    )
    client = CreatingSlowly()
    running = asyncio.create_task(run(args, client))
    await eventually(client.creating.is_set, what="the batch asked for")
    running.cancel()  # what asyncio.run does on Ctrl-C
    client.answer.set()  # the service created it: running again must follow this one
    await asyncio.wait([running], timeout=10)
    assert running.cancelled()
    noted = json.loads((tmp_path / "out.jsonl.batch").read_text())
    assert noted == {"batch_id": "batch-1", "input": str(source)}


async def test_a_local_run_routes_by_the_config_and_goes_on_where_it_stopped(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    failing = (
        "- model_name: failing\n  litellm_params:\n    model: openai/gpt-4o-mini~status=400\n"
        f"    api_base: {fake.base_url}/v1\n    api_key: sk-fake\n"
    )
    config = write_config(tmp_path, fake.base_url + "/v1", namespace, extra_models=failing)
    source = tmp_path / "input.jsonl"
    source.write_bytes(chat_lines(10) + chat_lines(2, model="failing", start=10))
    output = tmp_path / "out.jsonl"
    # An earlier run wrote two lines and was killed mid-way through a third.
    earlier = [line for line in chat_lines(2).splitlines()]
    written = [
        json.dumps({"id": f"x{i}", "custom_id": json.loads(line)["custom_id"], "response": None})
        for i, line in enumerate(earlier)
    ]
    output.write_text("\n".join(written) + '\n{"id": "torn", "cust')
    process = await start_cli(
        "run", str(source), "--output", str(output), "--local", "--config", str(config)
    )
    code, stderr = await finish(process)
    assert code == 0, stderr
    assert custom_ids(output) == sorted(f"req-{i}" for i in range(10))
    assert fake.request_count == 8 + 2  # the two written before were not run again
    errors = tmp_path / "out.errors.jsonl"
    assert custom_ids(errors) == ["req-10", "req-11"]
    assert all(
        json.loads(line)["response"]["status_code"] == 400
        for line in errors.read_text().splitlines()
    )
    assert "10 completed, 2 failed" in stderr
