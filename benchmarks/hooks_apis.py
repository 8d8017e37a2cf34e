"""The response cache on each front door API besides chat, side by side in one run: a
request's CPU with no cache, as a miss, and as a hit, for /v1/completions, /v1/messages and
/v1/responses (issue #19):

    python -m benchmarks.hooks_apis                  # 300 requests per case, 8 at a time
    python -m benchmarks.hooks_apis --requests 1000 --rounds 3

As benchmarks/hooks.py: one process holds the front door, a worker, the fake upstream and
the client, so CPU (`time.process_time()`) is the whole system's, over the requests; each
case keeps its least-CPU round. Writes a Markdown table to stdout (and --out).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from benchmarks import hooks
from tests.broker.harness import make_config
from tests.redis_helpers import REDIS_URL, delete_namespace, new_namespace
from workers.testing.server import FakeUpstream

CACHE = "litellm_settings:\n  cache: true\n"


def _bodies(path: str, text: str) -> dict[str, Any]:
    if path == "/v1/completions":
        return {"model": "gpt-test", "prompt": text}
    if path == "/v1/messages":
        return {
            "model": "gpt-test",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
        }
    return {"model": "gpt-test", "input": text, "store": False}


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    redis = Redis.from_url(REDIS_URL)
    cases: list[tuple[str, str, str, bool]] = [
        (f"{path} {label}", path, general, same)
        for path in ("/v1/completions", "/v1/messages", "/v1/responses")
        for label, general, same in (
            ("plain", "", False),
            ("cache miss", CACHE, False),
            ("cache hit", CACHE, True),
        )
    ]
    best: dict[str, dict[str, Any]] = {}
    async with FakeUpstream() as fake:
        for _ in range(args.rounds):
            for name, path, general, same in cases:

                def body(i: int, path: str = path, same: bool = same) -> dict[str, Any]:
                    return _bodies(path, "the same" if same else f"q {i} {uuid.uuid4().hex}")

                namespace = new_namespace()
                try:
                    config = make_config(fake.base_url + "/v1", namespace, general=general)
                    result = await hooks._case(name, config, body, args, path=path)
                finally:
                    await delete_namespace(redis, namespace)
                if name not in best or result["cpu_ms"] < best[name]["cpu_ms"]:
                    best[name] = result
    await redis.aclose()
    return [best[name] for name, *_ in cases]


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| case | CPU per request (ms) | vs plain | p50 (ms) | p99 (ms) | requests/s |",
        "|---|---|---|---|---|---|",
    ]
    plain = 0.0
    for r in results:
        if r["case"].endswith("plain"):
            plain = r["cpu_ms"]
        lines.append(
            f"| {r['case']} | {r['cpu_ms']:.2f} | {r['cpu_ms'] / plain - 1:+.0%} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hooks_apis", description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="each case's least-CPU round counts")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    text = table(asyncio.run(run(args)))
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
