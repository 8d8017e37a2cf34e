"""`switchboard batch run --local`: a JSONL batch run in this process, no service: each
line routed by the config's model_list (retries, fallbacks, as the SDK's Router does) at
most `--concurrency` at a time, results in OpenAI's output format. The output files are
appended as lines finish, so a run started again skips the custom_ids already written."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from broker.batch_cli import BatchCliError, Progress
from broker.batches import output
from broker.batches.lines import parse_line, split_lines
from broker.config.loader import Config, load_config
from broker.files.storage import DirectoryStore
from workers.envelopes import ERROR, RESPONSE, Record
from workers.errors import InvalidRequest, ModelNotFound, SwitchboardError
from workers.http import HttpClient
from workers.routing.engine import RoutingEngine
from workers.routing.memory_store import MemoryFigures
from workers.routing.plan import build_plan
from workers.sdk.requests import chat_call, media_policy
from workers.wire import encode

ENDPOINT = "/v1/chat/completions"
MAX_LINE_BYTES = 16 * 1024 * 1024
WRITE_EVERY = 64
decode_body = msgspec.json.Decoder(dict[str, Any]).decode


class LocalRun:
    def __init__(self, config: Config, args: argparse.Namespace) -> None:
        plan = build_plan(config.deployments, config.model_list, config.router_settings)
        self.http = HttpClient(max_reply_bytes=config.switchboard_settings.max_reply_bytes)
        self.engine = RoutingEngine(plan, self.http, MemoryFigures())
        self.groups = set(plan.groups)
        self.media = media_policy(config.switchboard_settings.media_fetch)
        self.args = args
        self.out = DirectoryStore(args.output.parent)
        self.output_key = args.output.name
        self.error_key = args.output.stem + ".errors.jsonl"
        self.good: list[bytes] = []
        self.bad: list[bytes] = []
        self.counts = {"total": 0, "completed": 0, "failed": 0}

    async def run(self) -> int:
        completed = await output.done_lines(self.out, self.output_key)
        failed = await output.done_lines(self.out, self.error_key)
        done = completed | failed
        lines = [line async for line in self._lines() if line[0] not in done]
        self.counts = {"total": len(lines) + len(done), "completed": len(completed)}
        self.counts["failed"] = len(failed)
        progress = Progress(sys.stderr)
        gate = asyncio.Semaphore(self.args.concurrency)

        async def one(custom_id: str, body: bytes) -> None:
            async with gate:
                await self._call(custom_id, body)
                if len(self.good) + len(self.bad) >= WRITE_EVERY:
                    await self._flush()
                    progress.draw(self._state("in_progress"))

        try:
            await asyncio.gather(*(one(custom_id, body) for custom_id, body in lines))
        finally:
            await self._flush()
            await self.engine.aclose()
            await self.http.close()
        progress.draw(self._state("completed"))
        progress.end()
        print(
            f"local batch: {self.counts['completed']} completed, {self.counts['failed']} "
            f"failed -> {self.args.output}",
            file=sys.stderr,
        )
        return 0

    async def _lines(self) -> AsyncIterator[tuple[str, bytes]]:
        source = self.args.input
        store = DirectoryStore(source.parent)
        try:
            chunks = store.read_stream(source.name)
            async for line in split_lines(chunks, MAX_LINE_BYTES):
                if line.strip():
                    parsed = parse_line(line, ENDPOINT)
                    yield parsed.custom_id, bytes(parsed.body)
        except (ValueError, OSError) as exc:
            raise BatchCliError(f"cannot read {source}: {exc}") from None
        except InvalidRequest as exc:
            raise BatchCliError(f"{source}: {exc.message}") from None

    async def _call(self, custom_id: str, body: bytes) -> None:
        request_id = "local_" + os.urandom(12).hex()
        try:
            request = decode_body(body)
            group = str(request.get("model"))
            if group not in self.groups:
                raise ModelNotFound(f"model `{group}` is not in the config", param="model")
            call = chat_call(request, drop_params=False, media=self.media)
            response, _outcome = await self.engine.chat(group, call)
            record = Record(seq=1, end=RESPONSE, body=encode(response))
        except SwitchboardError as exc:
            record = Record(seq=1, end=ERROR, body=exc.to_json(), status=exc.http_status)
        except msgspec.DecodeError as exc:
            error = InvalidRequest(f"the body is not JSON: {exc}")
            record = Record(seq=1, end=ERROR, body=error.to_json(), status=400)
        is_ok, line = output.result_line(custom_id, request_id, record)
        (self.good if is_ok else self.bad).append(line)
        self.counts["completed" if is_ok else "failed"] += 1

    async def _flush(self) -> None:
        good, bad, self.good, self.bad = self.good, self.bad, [], []
        if good:
            await self.out.append(self.output_key, b"".join(good))
        if bad:
            await self.out.append(self.error_key, b"".join(bad))

    def _state(self, status: str) -> dict[str, Any]:
        return {"request_counts": dict(self.counts), "status": status, "cost_usd": 0.0}


def run_local_command(args: argparse.Namespace) -> int:
    """`switchboard batch run --local --config C`: the config's model_list, this process."""
    try:
        if args.config is None:
            raise BatchCliError("--local needs --config (the model_list to route by)")
        if args.endpoint != ENDPOINT:
            raise BatchCliError(f"--local runs {ENDPOINT} lines only")
        if not Path(args.input).is_file():
            raise BatchCliError(f"no input file {args.input}")
        config = load_config(args.config, os.environ)
        return asyncio.run(LocalRun(config, args).run())
    except BatchCliError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nswitchboard: stopped; run again to go on where it stopped", file=sys.stderr)
        return 130
