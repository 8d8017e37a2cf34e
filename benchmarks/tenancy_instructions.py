"""Redis's side of a database key (issue #17) in instructions, not CPU seconds: the
admission and settlement scripts on a private redis-server run under callgrind, which
counts the instructions the server executes for each batch of requests exactly, so two
versions of the scripts compare on a loaded machine where CPU time moves by more than
the difference (benchmarks/tenancy_scripts.py times the same work).

    python -m benchmarks.tenancy_instructions [--baseline main] [--requests 400]

For each version (this tree's workers/tenancy/{admission,settle}.py and, with
--baseline, the same files at that git revision), with 0, 1 and 2 scopes (each with
rpm, tpm, parallel requests and a budget, its window holding a minute of buckets as
under steady traffic): instructions per request of admission and of settlement, 50
requests a pipeline. callgrind's counters are zeroed before each batch and dumped after
it (callgrind_control), so only the scripts' work is counted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from benchmarks.run import free_port
from benchmarks.tenancy_scripts import PER_PIPELINE, SPENT, _steady, bench_ticket
from broker.embedded_redis import redis_server_binary
from workers.redis_streams import Keys
from workers.tenancy import admission, settle

HERE = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _at_revision(revision: str, directory: Path) -> tuple[ModuleType, ModuleType]:
    """admission.py and settle.py as they were at `revision`."""
    found = []
    for name in ("admission", "settle"):
        text = subprocess.run(
            ["git", "show", f"{revision}:workers/tenancy/{name}.py"],
            cwd=HERE,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        path = directory / f"{name}_{revision.replace('/', '_')}.py"
        path.write_text(text)
        found.append(_load(f"_bench_{name}_{revision}", path))
    return found[0], found[1]


class Callgrind:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.out = directory / "callgrind.out"
        argv = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={self.out}",
            redis_server_binary(),
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.dumps = 0

    def _control(self, *flags: str) -> None:
        subprocess.run(
            ["callgrind_control", *flags, str(self.process.pid)],
            check=True,
            capture_output=True,
        )

    def zero(self) -> None:
        self._control("-z")

    def dump(self) -> int:
        """Instructions since the last zero."""
        self._control("-d")
        self.dumps += 1
        path = Path(f"{self.out}.{self.dumps}")
        for _ in range(200):
            if path.exists() and "totals:" in (text := path.read_text()):
                match = re.search(r"^(?:totals|summary): (\d+)", text, re.MULTILINE)
                assert match is not None
                return int(match.group(1))
            time.sleep(0.05)
        raise TimeoutError(f"no callgrind dump at {path}")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


async def _steady_apart(redis: Redis, keys: Keys, scopes: tuple[str, ...]) -> None:
    """`_steady` for scripts of the earlier layout: the buckets in a key of their own
    (`win:<scope>`), the window's seconds `o` and `l` beside the counters."""
    now = int(time.time())
    seconds = range(now - 59, now)
    for scope in scopes:
        fields: dict[str, int | str] = {f"{k}{second}": 1 for second in seconds for k in "rt"}
        fields["~"] = "~" * 65
        await redis.hset(keys.tenancy.window(scope), mapping=fields)  # type: ignore[misc]  # redis-py's sync-or-async union
        totals = {"R": len(seconds), "T": len(seconds), "o": now - 59, "l": now - 1}
        await redis.hset(keys.tenancy.scope(scope), mapping=totals)  # type: ignore[misc]  # as above


async def _phase(
    redis: Redis,
    grind: Callgrind,
    versions: tuple[ModuleType, ModuleType],
    scopes: int,
    tag: str,
    requests: int,
) -> tuple[float, float]:
    """(admission, settlement) instructions per request."""
    admit_mod, settle_mod = versions
    keys = Keys(f"bench-{tag}-{scopes}")
    ticket = bench_ticket(admit_mod.Ticket, admit_mod.Scope, scopes)
    if "'O'" in admit_mod.ADMIT:
        await _steady(redis, keys, ticket.scope_names)
    else:
        await _steady_apart(redis, keys, ticket.scope_names)
    await redis.set(keys.tenancy.filled, b"1")
    sha = str(await redis.script_load(admit_mod.ADMIT))
    settle_sha = str(await redis.script_load(settle_mod.SETTLE))
    admit_ir = settle_ir = 0
    for batch in range(requests // PER_PIPELINE):
        ids = [f"r{batch}-{i}" for i in range(PER_PIPELINE)]
        pipe = redis.pipeline(transaction=False)
        deadline_ms = int(time.time() * 1000) + 60_000
        for rid in ids:
            call = admit_mod.script_call(keys, "default", b"x" * 600, rid, ticket, deadline_ms)
            admit_mod.queue(pipe, sha, call)
        grind.zero()
        replies: list[Any] = await pipe.execute()
        admit_ir += grind.dump()
        assert all(bytes(reply[0]) == b"ok" for reply in replies), replies[:1]
        pipe = redis.pipeline(transaction=False)
        for rid in ids:
            script_keys, args = settle_mod.script_call(keys.tenancy, rid, ticket.scope_names, SPENT)
            pipe.evalsha(settle_sha, len(script_keys), *script_keys, *args)
        grind.zero()
        await pipe.execute()
        settle_ir += grind.dump()
    await redis.flushall()
    done = requests // PER_PIPELINE * PER_PIPELINE
    return admit_ir / done, settle_ir / done


async def run(baseline: str | None, requests: int) -> list[str]:
    versions = {"this tree": (admission, settle)}
    with tempfile.TemporaryDirectory() as directory:
        if baseline:
            versions = {baseline: _at_revision(baseline, Path(directory)), **versions}
        grind = Callgrind(Path(directory))
        redis = Redis(port=grind.port)
        try:
            for _ in range(600):
                with contextlib.suppress(RedisConnectionError):
                    if await redis.ping():  # type: ignore[misc]  # redis-py's sync-or-async union
                        break
                await asyncio.sleep(0.1)
            rows = []
            for tag, modules in versions.items():
                base = 0.0
                for scopes in (0, 1, 2):
                    admit, settled = await _phase(
                        redis, grind, modules, scopes, tag.replace(" ", "-"), requests
                    )
                    base = base or admit + settled
                    rows.append(
                        f"| {tag} | {scopes} | {admit:,.0f} | {settled:,.0f} "
                        f"| {admit + settled:,.0f} | {admit + settled - base:+,.0f} |"
                    )
        finally:
            await redis.aclose()
            grind.stop()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tenancy_instructions")
    parser.add_argument("--baseline", default=None, help="a git revision to compare with")
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.baseline, args.requests))
    print("| version | scopes | admission instructions | settlement | both | extra |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
