"""`switchboard batch run | status | cancel`: batches on a running Switchboard, from a
JSONL file to OpenAI's output format, with a progress line, resumable.

`run` uploads the input, creates the batch and notes its id beside the output
(`<output>.batch`); run again after an interruption (Ctrl-C, a lost connection) and it
follows the same batch instead of starting another. When the batch ends it writes the
output file (and the error file, `<output>.errors.jsonl`, when lines failed), streamed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import aiohttp

DEFAULT_URL = "http://127.0.0.1:4000"
KEY_ENVS = ("SWITCHBOARD_API_KEY", "SWITCHBOARD_MASTER_KEY")
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
POLL_S = 1.0
BAR_WIDTH = 24
DOWNLOAD_CHUNK = 256 * 1024


class BatchCliError(Exception):
    """What the command prints before exiting 1."""


def add_batch_commands(commands: Any) -> None:
    batch = commands.add_parser("batch", help="run a JSONL batch on a running Switchboard")
    actions = batch.add_subparsers(dest="action", required=True)

    def client(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--url", default=DEFAULT_URL, help=f"the service (default {DEFAULT_URL})")
        p.add_argument("--key", default=None, help="an API key (default $SWITCHBOARD_API_KEY)")
        return p

    run = client(actions.add_parser("run", help="submit, follow with progress, download"))
    run.add_argument("input", type=Path, help="OpenAI batch input (JSONL)")
    run.add_argument("--output", type=Path, required=True, help="where the results go")
    run.add_argument("--endpoint", default="/v1/chat/completions")
    run.add_argument("--completion-window", default="24h")
    run.add_argument(
        "--local", action="store_true", help="run in this process (no service), by --config"
    )
    run.add_argument("--config", type=Path, default=None, help="with --local: a config.yaml")
    run.add_argument("--concurrency", type=int, default=16, help="with --local: calls at once")
    status = client(actions.add_parser("status", help="a batch's state and counts"))
    status.add_argument("batch_id")
    cancel = client(actions.add_parser("cancel", help="cancel a batch"))
    cancel.add_argument("batch_id")


def run_batch_command(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    key = args.key or next((environ[k] for k in KEY_ENVS if environ.get(k)), None)
    try:
        if not key:
            raise BatchCliError("no key: pass --key or set $SWITCHBOARD_API_KEY")
        return asyncio.run(_run(args, Client(args.url, key)))
    except BatchCliError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nswitchboard: stopped; the batch goes on, run again to follow it", file=sys.stderr)
        return 130


async def _run(args: argparse.Namespace, client: Client) -> int:
    async with client:
        if args.action == "status":
            print(json.dumps(await client.call("GET", f"/v1/batches/{args.batch_id}"), indent=2))
            return 0
        if args.action == "cancel":
            batch = await client.call("POST", f"/v1/batches/{args.batch_id}/cancel")
            print(f"{batch['id']}: {batch['status']}")
            return 0
        return await run(args, client)


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
        self.session = aiohttp.ClientSession(headers=self.headers, timeout=timeout)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.session is not None, "use the client in `async with`"
        return self.session

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with self.http.request(method, self.url + path, **kwargs) as response:
                body = await response.read()
                if response.status >= 400:
                    raise BatchCliError(f"{method} {path}: {response.status} {_message(body)}")
                return json.loads(body)
        except aiohttp.ClientError as exc:
            raise BatchCliError(f"cannot reach {self.url}: {exc}") from None

    async def download(self, file_id: str, target: Path) -> None:
        """A file's content to `target`, streamed (written beside, then moved in place)."""
        partial = target.with_name(target.name + ".partial")
        async with self.http.get(f"{self.url}/v1/files/{file_id}/content") as response:
            if response.status >= 400:
                raise BatchCliError(f"download {file_id}: {_message(await response.read())}")
            with partial.open("wb") as handle:
                async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK):
                    handle.write(chunk)
        partial.replace(target)


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")


async def run(args: argparse.Namespace, client: Client) -> int:
    note = args.output.with_name(args.output.name + ".batch")
    batch_id = _noted(note)
    if batch_id is None:
        batch_id = await _submit(args, client, note)
        print(f"batch {batch_id} submitted", file=sys.stderr)
    else:
        print(f"following batch {batch_id} (from {note})", file=sys.stderr)
    batch = await follow(client, batch_id, sys.stderr)
    if batch.get("output_file_id"):
        await client.download(batch["output_file_id"], args.output)
    else:
        args.output.write_bytes(b"")
    errors = args.output.with_name(args.output.stem + ".errors.jsonl")
    if batch.get("error_file_id"):
        await client.download(batch["error_file_id"], errors)
    note.unlink(missing_ok=True)
    counts = batch["request_counts"]
    print(
        f"batch {batch_id} {batch['status']}: {counts['completed']} completed, "
        f"{counts['failed']} failed -> {args.output}"
        + (f" (errors: {errors})" if batch.get("error_file_id") else ""),
        file=sys.stderr,
    )
    return 0 if batch["status"] == "completed" else 1


def _noted(note: Path) -> str | None:
    try:
        return str(json.loads(note.read_text())["batch_id"])
    except (OSError, ValueError, KeyError):
        return None


async def _submit(args: argparse.Namespace, client: Client, note: Path) -> str:
    """Upload the input, create the batch and note its id; the batch's id."""
    if not args.input.is_file():
        raise BatchCliError(f"no input file {args.input}")
    with args.input.open("rb") as handle:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", handle, filename=args.input.name)  # streamed from disk
        uploaded = await client.call("POST", "/v1/files", data=form)
    body = {
        "input_file_id": uploaded["id"],
        "endpoint": args.endpoint,
        "completion_window": args.completion_window,
    }
    # Once asked for, the batch may exist whatever becomes of this process. A Ctrl-C (which
    # asyncio.run turns into cancelling us) waits until its id is noted: cut short here, the
    # note would be missing and running again would submit a second batch, not follow this
    # one. A second Ctrl-C still stops at once (asyncio.run raises KeyboardInterrupt).
    creating = asyncio.ensure_future(_create(client, body, note, args.input))
    try:
        return await asyncio.shield(creating)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):  # a failure to create is moot: the user stopped us
            await creating
        raise


async def _create(client: Client, body: dict[str, str], note: Path, source: Path) -> str:
    batch = await client.call("POST", "/v1/batches", json=body)
    batch_id = str(batch["id"])
    _note(note, batch_id, source)
    return batch_id


def _note(note: Path, batch_id: str, source: Path) -> None:
    note.write_text(json.dumps({"batch_id": batch_id, "input": str(source)}))


async def follow(client: Client, batch_id: str, out: TextIO) -> dict[str, Any]:
    """Poll until the batch ends, drawing the progress line; the last batch object."""
    progress = Progress(out)
    while True:
        batch: dict[str, Any] = await client.call("GET", f"/v1/batches/{batch_id}")
        progress.draw(batch)
        if batch["status"] in ENDED:
            progress.end()
            return batch
        await asyncio.sleep(POLL_S)


class Progress:
    """`[#####.....] 1200/20000 done, 3 failed, 250.1/s, ETA 1m07s, $0.0421, in_progress`"""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()
        self.first_done: int | None = None

    def draw(self, batch: dict[str, Any]) -> None:
        counts = batch.get("request_counts") or {}
        total, completed, failed = (counts.get(k, 0) for k in ("total", "completed", "failed"))
        done = completed + failed
        if self.first_done is None:
            self.first_done = done
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (done - self.first_done) / elapsed
        eta = _duration((total - done) / rate) if rate > 0 else "?"
        filled = int(BAR_WIDTH * done / total) if total else 0
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = (
            f"[{bar}] {done}/{total} done, {failed} failed, {rate:.1f}/s, ETA {eta}, "
            f"${batch.get('cost_usd', 0.0):.4f}, {batch['status']}"
        )
        self.out.write("\r" + line.ljust(100) if self.out.isatty() else line + "\n")
        self.out.flush()

    def end(self) -> None:
        if self.out.isatty():
            self.out.write("\n")


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
