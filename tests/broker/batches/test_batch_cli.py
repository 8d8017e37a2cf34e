"""`switchboard batch run` against a running service: progress on stderr, OpenAI's output
format in the file named, and a run interrupted then started again follows the same batch."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from tests.broker.batches.sdk import KEY_A, Clients, batch_config, chat_lines, clients
from tests.broker.harness import service
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

__all__ = ["clients"]

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
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
        await eventually(note.exists, what="the batch noted", timeout_s=30)
        first.send_signal(signal.SIGINT)
        code, stderr = await finish(first)
        assert code == 130, stderr
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
