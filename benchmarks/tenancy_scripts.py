"""Redis's side of a database key (issue #17), alone: the CPU a private redis-server
spends per request on the admission and settlement scripts, with 0 scopes (the master
key: the scripts still queue the request, keep its reservation and write its spend
event), 1 and 2 scopes (a key, and its team, each with rpm, tpm, parallel requests and a
budget), each scope's window holding a minute of buckets, as under steady traffic.
Measured from the server's own CPU time (/proc), 50 requests a pipeline, the variants
interleaved and repeated; the median per variant. Run by benchmarks/tenancy.py."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import time
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from benchmarks.procs import cpu_s
from benchmarks.run import free_port
from broker.embedded_redis import redis_server_binary
from workers.redis_streams import Keys
from workers.tenancy import admission, events, settle
from workers.tenancy.admission import Scope, Ticket
from workers.tenancy.records import Limits

REQUESTS: Final = 4000
PER_PIPELINE: Final = 50
LIMITS: Final = Limits(
    rpm=10**9, tpm=10**12, parallel=10_000, max_budget=1e9, budget_duration="30d"
)
ENVELOPE: Final = b"x" * 600


# What every benchmarked request settles with.
SPENT = events.WorkerEvent(end_ms=2, status=events.SUCCESS, prompt_tokens=9, spend=0.0005)


def bench_ticket(ticket: Any, scope: Any, scopes: int) -> Any:
    """The benchmarked request's ticket over `scopes` scopes, every limit set; `ticket` and
    `scope` are the admission module's classes (benchmarks/tenancy_instructions.py passes
    another checkout's)."""
    return ticket(
        scopes=tuple(scope(f"key:k{i}", LIMITS) for i in range(scopes)),
        tokens=300,
        cost_usd=0.001,
        event=events.encode(
            events.FrontEvent(
                call_type="chat", api_key="k" * 64, model="m", model_group="m", start_ms=1
            )
        ),
    )


async def _phase(
    redis: Redis, pid: int, sha: str, scopes: int, round_: int, per_pipeline: int
) -> tuple[float, float]:
    """(admission, settlement) Redis CPU µs per request."""
    keys = Keys(f"bench{round_}-{scopes}")
    ticket = bench_ticket(Ticket, Scope, scopes)
    await _steady(redis, keys, ticket.scope_names)
    admit_s = settle_s = 0.0
    for batch in range(REQUESTS // per_pipeline):
        ids = [f"r{batch}-{i}" for i in range(per_pipeline)]
        pipe = redis.pipeline(transaction=False)
        deadline_ms = int(time.time() * 1000) + 60_000
        for rid in ids:
            call = admission.script_call(keys, "default", ENVELOPE, rid, ticket, deadline_ms)
            admission.queue(pipe, sha, call)
        before = cpu_s([pid])
        await pipe.execute()
        admit_s += cpu_s([pid]) - before
        pipe = redis.pipeline(transaction=False)
        for rid in ids:
            script_keys, args = settle.script_call(keys.tenancy, rid, ticket.scope_names, SPENT)
            pipe.eval(settle.SETTLE, len(script_keys), *script_keys, *args)
        before = cpu_s([pid])
        await pipe.execute()
        settle_s += cpu_s([pid]) - before
    await redis.flushall()
    return admit_s / REQUESTS * 1e6, settle_s / REQUESTS * 1e6


async def _steady(redis: Redis, keys: Keys, scopes: tuple[str, ...]) -> None:
    """Each scope as a busy one has it: a request in each of the last 59 seconds, so its
    window holds a minute of buckets (a phase here lasts a second or two)."""
    now = int(time.time())
    seconds = range(now - 59, now)
    for scope in scopes:
        fields: dict[str, int | str] = {
            f"{kind}{second}": 1 for second in seconds for kind in ("r", "t")
        }
        fields["~"] = "~" * 65  # as the admission that opened the window wrote it
        fields.update({"R": len(seconds), "T": len(seconds), "O": now - 59, "L": now - 1})
        await redis.hset(keys.tenancy.scope(scope), mapping=fields)  # type: ignore[misc]  # redis-py's sync-or-async union


async def script_cpu(rounds: int = 7, per_pipeline: int = PER_PIPELINE) -> list[str]:
    """Markdown rows: scopes, admission µs, settlement µs, both, extra over 0 scopes;
    `per_pipeline` requests a round trip (1: as a lone request, the caches cold)."""
    port = free_port()
    argv = [redis_server_binary(), "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: ASYNC220  (started once)
    redis = Redis(port=port)
    try:
        for _ in range(100):
            with contextlib.suppress(RedisConnectionError):
                if await redis.ping():  # type: ignore[misc]  # redis-py's sync-or-async union
                    break
            await asyncio.sleep(0.05)
        sha = str(await redis.script_load(admission.ADMIT))
        found: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}
        for round_ in range(rounds):
            for scopes in found:
                sample = await _phase(redis, server.pid, sha, scopes, round_, per_pipeline)
                found[scopes].append(sample)
    finally:
        await redis.aclose()
        server.kill()
        server.wait()
    rows = []
    base = 0.0
    for scopes, samples in found.items():
        admit = statistics.median(a for a, _ in samples)
        settled = statistics.median(s for _, s in samples)
        base = base or admit + settled
        rows.append(
            f"| {per_pipeline} | {scopes} | {admit:.1f} | {settled:.1f} | {admit + settled:.1f} "
            f"| {admit + settled - base:+.1f} |"
        )
    return rows
