"""The ingress APIs side by side (issue #18): the same streamed answer through
`/v1/chat/completions`, `/v1/messages` and `/v1/responses`, at one concurrency, through
Switchboard (`switchboard up`, 1 front door + 1 worker) and, with `--litellm`, LiteLLM's
proxy on the same routes.

    python -m benchmarks.ingress                      # Switchboard only, c=64, 6 s a point
    python -m benchmarks.ingress --litellm            # and LiteLLM (installs it, see run.py)
    python -m benchmarks.ingress --duration 2 --concurrency 8

Every request is checked: a stream counts only when it ends with its API's last event
(`[DONE]`, `message_stop`, `response.completed`). Writes ingress.json into --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks import gateways
from benchmarks.gateways import MASTER_KEY, Target
from benchmarks.loadgen import Client
from benchmarks.procs import TreeMonitor, wait_http_ready
from benchmarks.run import free_port, upstream
from benchmarks.scenarios import _ms_stats

HERE = Path(__file__).resolve().parent
# route, the body for a streamed "Say hello." and the event a complete stream ends with
APIS: dict[str, tuple[str, dict[str, Any], bytes]] = {
    "chat": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Say hello."}], "stream": True},
        b"data: [DONE]",
    ),
    "messages": (
        "/v1/messages",
        {
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 256,
            "stream": True,
        },
        b"event: message_stop",
    ),
    "responses": (
        "/v1/responses",
        {"input": "Say hello.", "stream": True, "store": False},
        b"event: response.completed",
    ),
}


class EndCheck:
    """A stream is good when it holds its API's last event (the loadgen's check protocol)."""

    def __init__(self, last_event: bytes) -> None:
        self.last_event = last_event
        self.last_body = b""

    def is_good(self, body: bytes) -> bool:
        self.last_body = body
        if self.last_event in body:
            return True
        # Some gateways send the event's type only in its data, without an `event:` line.
        kind = self.last_event.removeprefix(b"event: ")
        return b'"type":"%s"' % kind in body or b'"type": "%s"' % kind in body


def request_bytes(port: int, route: str, body: dict[str, Any]) -> bytes:
    payload = orjson.dumps(body)
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {MASTER_KEY}\r\nx-api-key: {MASTER_KEY}\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def point(target: Target, api: str, concurrency: int, duration_s: float) -> dict[str, Any]:
    route, body, last_event = APIS[api]
    request = request_bytes(target.port, route, {**body, "model": target.stream_model})
    client = Client(target.port, request, stream_check=EndCheck(last_event))  # type: ignore[arg-type]  # duck-typed check
    conns = await client.open(concurrency)
    monitor = TreeMonitor(target.service.pid) if target.service is not None else None
    client.start(conns)
    await asyncio.sleep(1.0)  # warm-up
    if monitor is not None:
        monitor.start()
    client.is_measuring = True
    started = time.perf_counter()
    await asyncio.sleep(duration_s)
    client.is_measuring = False
    elapsed = time.perf_counter() - started
    usage = await monitor.stop() if monitor is not None else None
    await client.stop(conns, 15.0)
    sample = client.sample
    done = len(sample.latencies_s)
    return {
        "target": target.name,
        "api": api,
        "concurrency": concurrency,
        "requests": done,
        "rps": done / elapsed,
        "latency_ms": _ms_stats(sample.latencies_s),
        "ttft_ms": _ms_stats(sample.ttfts_s),
        "errors": sum(sample.errors.values()),
        "bad_streams": sample.bad_streams,
        "cpu_ms_per_request": usage.cpu_s * 1000 / done if usage and done else None,
    }


def line(p: dict[str, Any]) -> str:
    cpu = p["cpu_ms_per_request"]
    cpu_text = "?" if cpu is None else f"{cpu:.2f}"
    return (
        f"{p['target']:>16} {p['api']:>9} c={p['concurrency']:<4} {p['rps']:8.0f} rps  "
        f"p50 {p['latency_ms']['p50']:7.1f} ms  p99 {p['latency_ms']['p99']:7.1f} ms  "
        f"ttft p50 {p['ttft_ms']['p50']:6.1f} ms  cpu {cpu_text} ms/req  "
        f"errors {p['errors']} bad {p['bad_streams']}"
    )


async def measure(target: Target, args: argparse.Namespace) -> list[dict[str, Any]]:
    assert target.service is not None
    target.service.start()
    try:
        await wait_http_ready(
            target.port, target.ready_path, target.ready_timeout_s, target.service
        )
        results = []
        for api in args.apis.split(","):
            result = await point(target, api, args.concurrency, args.duration)
            print(line(result), flush=True)
            results.append(result)
        return results
    finally:
        target.service.stop()


# A Claude id on Bedrock: /v1/messages goes through InvokeModel natively, chat through Converse.
BEDROCK_CLAUDE = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def provider_config(text: str, provider: str, upstream_port: int) -> str:
    """The benchmark config with its deployments on `provider`'s API of the fake upstream."""
    # Anthropic's and Bedrock's bases have no /v1.
    text = text.replace(f"{upstream_port}/v1", str(upstream_port))
    if provider == "bedrock":
        # The key is sent as a Bedrock API key (bearer), so no SigV4 credentials are needed.
        return text.replace("model: openai/gpt-4o-mini", f"model: {BEDROCK_CLAUDE}")
    return text.replace("model: openai/", f"model: {provider}/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingress", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--apis", default="chat,messages,responses")
    parser.add_argument("--litellm", action="store_true", help="LiteLLM's proxy too")
    parser.add_argument(
        "--provider",
        default="openai",
        help="the deployments' provider: openai (default), bedrock (a Claude id: /v1/messages "
        "natively through InvokeModel, chat through Converse) or anthropic, where /v1/messages "
        "is a native pass-through on both gateways (both send /v1/responses for openai/ "
        "deployments to the upstream's own /v1/responses, which the fake upstream serves "
        "since issue #18's native Responses; LiteLLM sends /v1/messages there too)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.litellm:
        gateways.ensure_litellm()
    with upstream(args.out, None) as upstream_port:
        config = gateways.write_config(
            args.out / "config.yaml", f"http://127.0.0.1:{upstream_port}"
        )
        if args.provider != "openai":
            config.write_text(provider_config(config.read_text(), args.provider, upstream_port))
        logs = args.out / "logs"
        targets = [
            gateways.switchboard(free_port(), config, logs, front_doors=1, workers=1, cpus=None)
        ]
        if args.litellm:
            targets.append(gateways.litellm(free_port(), config, logs, workers=1, cpus=None))
        results: list[dict[str, Any]] = []
        for target in targets:
            results += asyncio.run(measure(target, args))
    (args.out / "ingress.json").write_text(json.dumps(results, indent=2))
    return 0 if all(r["errors"] == 0 and r["bad_streams"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
