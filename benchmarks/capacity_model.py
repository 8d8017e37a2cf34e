"""The capacity model: from what one request costs each part (front door CPU, worker CPU,
Redis CPU, split over shards), how many requests per second each part carries and what a
fleet of N front doors, M workers and K Redis Cluster shards sustains. Pure arithmetic over
figures measured by benchmarks/capacity.py; rendering them as markdown lives here too.

The fleet model:

    rps(N, M, K) = min(N * U / fd_s, M * U / worker_s, REDIS_UTILISATION / (redis_s * hot(K)))
    hot(K)       = h + (1 - h) / K          (hot(1) = 1: a single Redis)

`fd_s`, `worker_s`, `redis_s` are CPU seconds per request; `U` the share of a core planned
for a front door or worker (1.0 for the raw figure, 0.8 to size with headroom). A Redis shard
is one thread: at 80% of its core its latency still holds. `h` is the share of a request's
Redis work that stays on one shard however many there are: the lanes' slot ({q}: every lane
stream and the tenancy keys) and the model group's routing slot ({rt:group}). With the rest
spread over K shards, the busiest shard does `hot(K)` of the work; `h` comes from the busiest
shard's share in a K-shard run: `h = (K * share - 1) / (K - 1)`. For K > 1 the three costs
are the single Redis's times what a cluster adds (cluster run / the same processes on one
Redis; see `model_of`): a request costs more there. Counting every pinned slot on one shard
makes the ceiling `0.8 / (redis_s * h)` a conservative figure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

REDIS_UTILISATION = 0.8
PLANNED_UTILISATION = 0.8
ROLES = ("front door", "worker", "upstream", "client")


@dataclass
class Phase:
    """One measured window: a setup (single Redis or cluster), a key path and a mode."""

    setup: str
    key: str
    mode: str
    requests: int
    window_s: float
    cpu_s: dict[str, float]  # by role (ROLES); Redis is in `shards`
    shards: dict[str, Counter[str]] = field(default_factory=dict)  # INFO deltas by node
    # CPU s/s with no load, by role and by node: left out of the per-request figures.
    idle_per_s: dict[str, float] = field(default_factory=dict)

    def per_request(self, seconds: float) -> float:
        return seconds / self.requests if self.requests else math.nan

    def busy_s(self, part: str) -> float:
        """A role's or a Redis node's CPU seconds in the window, less its idle rate's."""
        spent = self.cpu_s[part] if part in self.cpu_s else self.shards[part]["(cpu µs)"] / 1e6
        return spent - self.idle_per_s.get(part, 0.0) * self.window_s

    @property
    def fd_s(self) -> float:
        return self.per_request(self.busy_s("front door"))

    @property
    def worker_s(self) -> float:
        return self.per_request(self.busy_s("worker"))

    def shard_cpu_s(self, node: str) -> float:
        return self.per_request(self.busy_s(node))

    @property
    def redis_s(self) -> float:
        return sum(self.shard_cpu_s(node) for node in self.shards)

    def commands(self, node: str | None = None) -> float:
        """Redis commands per request (a script's commands count beside its EVALSHA)."""
        nodes = [node] if node is not None else list(self.shards)
        calls = sum(n for name in nodes for c, n in self.shards[name].items() if c[0] != "(")
        return self.per_request(calls)

    def redis_bytes(self, which: str) -> float:
        return self.per_request(sum(used[f"(bytes {which})"] for used in self.shards.values()))

    @property
    def gateway_s(self) -> float:
        return self.fd_s + self.worker_s + self.redis_s

    @property
    def busiest_share(self) -> float:
        """The busiest shard's share of the Redis CPU (1.0 with a single Redis)."""
        total = self.redis_s
        return max(self.shard_cpu_s(n) for n in self.shards) / total if total else math.nan

    @property
    def rps(self) -> float:
        return self.requests / self.window_s


def pinned_share(busiest_share: float, shards: int) -> float:
    """`h`: the share of the Redis work that no number of shards spreads."""
    if shards < 2:
        return 1.0
    return min(1.0, max(0.0, (shards * busiest_share - 1) / (shards - 1)))


@dataclass
class Model:
    """Per-request costs of one key path and mode, and what they allow."""

    fd_s: float
    worker_s: float
    redis_s: float  # on a single Redis
    # On a cluster a request costs more (docs/performance.md, "Capacity model"): the
    # K-shard figures use the cluster run's own costs when one was measured.
    cluster_fd_s: float
    cluster_worker_s: float
    cluster_redis_s: float
    pinned: float  # h

    @property
    def shard_rps(self) -> float:
        """A single Redis (or one shard carrying every slot) at 80% of its core."""
        return REDIS_UTILISATION / self.redis_s

    def redis_rps(self, shards: int) -> float:
        if shards == 1:
            return self.shard_rps
        busiest = self.cluster_redis_s * (self.pinned + (1 - self.pinned) / shards)
        return REDIS_UTILISATION / busiest

    @property
    def redis_ceiling_rps(self) -> float:
        """What no number of shards passes: the pinned slots' shard at 80%."""
        pinned = self.cluster_redis_s * self.pinned
        return REDIS_UTILISATION / pinned if pinned else math.inf

    def costs(self, shards: int) -> tuple[float, float]:
        """Front door and worker CPU s per request with a single Redis or on a cluster."""
        if shards == 1:
            return self.fd_s, self.worker_s
        return self.cluster_fd_s, self.cluster_worker_s

    def fleet(
        self, front_doors: int, workers: int, shards: int, utilisation: float = 1.0
    ) -> tuple[float, str]:
        """Requests per second the fleet sustains, and the part that saturates first."""
        fd_s, worker_s = self.costs(shards)
        limits = {
            "front doors": front_doors * utilisation / fd_s,
            "workers": workers * utilisation / worker_s,
            "Redis": self.redis_rps(shards),
        }
        first = min(limits, key=lambda part: limits[part])
        return limits[first], first

    def size(self, target_rps: float, max_shards: int = 64) -> tuple[int, int, int | None]:
        """Front doors, workers and shards for `target_rps` at 80% of every core (on a
        cluster's costs when it takes one); shards None when the pinned slots alone cap
        Redis below it."""
        shards = next(
            (k for k in range(1, max_shards + 1) if self.redis_rps(k) >= target_rps), None
        )
        fd_s, worker_s = self.costs(shards or max_shards)
        front_doors = math.ceil(target_rps * fd_s / PLANNED_UTILISATION)
        workers = math.ceil(target_rps * worker_s / PLANNED_UTILISATION)
        return front_doors, workers, shards


def model_of(single: Phase, cluster: Phase | None, spread: Phase | None = None) -> Model:
    """Costs from the single-Redis run; `h` (from its busiest shard) and the costs on a
    cluster from the cluster run, when there is one. With `spread` (the cluster's process
    count on one Redis), the cluster costs are the single run's times cluster / spread:
    what the cluster itself adds, without what crowding its processes onto one core adds,
    which a fleet with a core per process does not pay."""
    alone = (single.fd_s, single.worker_s, single.redis_s)
    if cluster is None or len(cluster.shards) < 2:
        return Model(*alone, *alone, 1.0)
    pinned = pinned_share(cluster.busiest_share, len(cluster.shards))
    on_cluster = (cluster.fd_s, cluster.worker_s, cluster.redis_s)
    if spread is not None:
        crowded = (spread.fd_s, spread.worker_s, spread.redis_s)
        fd_s, worker_s, redis_s = (
            a * c / s for a, c, s in zip(alone, on_cluster, crowded, strict=True)
        )
        on_cluster = (fd_s, worker_s, redis_s)
    return Model(*alone, *on_cluster, pinned)


# ------------------------------------------------------------------------------ rendering


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def per_request_table(phases: list[Phase]) -> list[str]:
    lines = [
        "| key, mode | requests | front door CPU µs | worker CPU µs | Redis CPU µs | "
        "Redis commands | bytes into / out of Redis | upstream + client CPU µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        others = p.per_request(p.busy_s("upstream") + p.busy_s("client"))
        lines.append(
            f"| {p.key}, {p.mode} | {p.requests:,} | {us(p.fd_s)} | {us(p.worker_s)} | "
            f"{us(p.redis_s)} | {p.commands():.1f} | {p.redis_bytes('in'):,.0f} / "
            f"{p.redis_bytes('out'):,.0f} | {us(others)} |"
        )
    return lines


def model_table(models: dict[str, Model], shards: int) -> list[str]:
    lines = [
        "| key, mode | rps per front-door core, single Redis / cluster | rps per worker "
        "core, single Redis / cluster | rps per Redis (one instance, 80% of a core) | "
        f"pinned share h | Redis rps with {shards} shards | Redis ceiling (any number of "
        "shards) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in models.items():
        lines.append(
            f"| {name} | {1 / m.fd_s:,.0f} / {1 / m.cluster_fd_s:,.0f} | "
            f"{1 / m.worker_s:,.0f} / {1 / m.cluster_worker_s:,.0f} | {m.shard_rps:,.0f} | "
            f"{m.pinned:.2f} | {m.redis_rps(shards):,.0f} | {m.redis_ceiling_rps:,.0f} |"
        )
    return lines


def shard_table(phase: Phase, slots: dict[str, list[str]]) -> list[str]:
    lines = [
        f"{phase.key}, {phase.mode}, per shard:",
        "",
        "| shard | holds | commands / request | CPU µs / request | share of Redis CPU |",
        "|---|---|---:|---:|---:|",
    ]
    total = phase.redis_s
    for node in phase.shards:
        cpu = phase.shard_cpu_s(node)
        held = ", ".join(f"`{tag}`" for tag in slots.get(node, [])) or "(request keys only)"
        lines.append(
            f"| {node} | {held} | {phase.commands(node):.1f} | {us(cpu)} | {cpu / total:.0%} |"
        )
    return lines


def check_rows(
    single: Phase, cluster: Phase, gateway_cores: float, spread: Phase | None
) -> list[str]:
    """Predicted (from the single-Redis 1 + 1 run) against measured: on the cluster, and,
    when it ran, with the cluster's process count on one Redis (`spread`), which tells the
    cost of more processes on one core from the cost of the cluster itself."""
    shards = len(cluster.shards)

    def per_core(phase: Phase) -> float:
        # Requests per second of the gateway's own CPU (fd + worker + Redis): on a shared
        # machine the cores it got vary; this checks that a request costs what was predicted.
        return 1 / phase.gateway_s

    rows: list[tuple[str, float, Callable[[Phase], float | None], str]] = [
        ("front door CPU µs / request", single.fd_s * 1e6, lambda p: p.fd_s * 1e6, ",.0f"),
        ("worker CPU µs / request", single.worker_s * 1e6, lambda p: p.worker_s * 1e6, ",.0f"),
        (
            "Redis CPU µs / request, all nodes",
            single.redis_s * 1e6,
            lambda p: p.redis_s * 1e6,
            ",.0f",
        ),
        (
            f"Redis CPU µs / request, busiest shard (predicted: an even 1/{shards})",
            single.redis_s * 1e6 / shards,
            lambda p: p.redis_s * p.busiest_share * 1e6 if len(p.shards) > 1 else None,
            ",.0f",
        ),
        ("Redis commands / request", single.commands(), lambda p: p.commands(), ".1f"),
        (
            "bytes into Redis / request",
            single.redis_bytes("in"),
            lambda p: p.redis_bytes("in"),
            ",.0f",
        ),
        ("requests / s per core of gateway CPU", per_core(single), per_core, ",.0f"),
        (
            f"requests / s on {gateway_cores:g} idle core(s)",
            gateway_cores * per_core(single),
            lambda p: p.rps,
            ",.0f",
        ),
    ]
    middle = spread is not None
    head = f"| {cluster.key}, {cluster.mode} | predicted |"
    head += " measured, 2 + 2 on one Redis |" if middle else ""
    lines = [
        head + " measured, cluster | cluster / predicted |",
        "|---|---:|" + "---:|" * (3 if middle else 2),
    ]
    for name, predicted, measure, form in rows:
        cells = [format(predicted, form)]
        if spread is not None:
            value = measure(spread)
            cells.append(format(value, form) if value is not None else "-")
        on_cluster = measure(cluster)
        assert on_cluster is not None
        cells += [format(on_cluster, form), f"{on_cluster / predicted:.2f}" if predicted else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def fleet_table(models: dict[str, Model], fleets: list[tuple[int, int, int]]) -> list[str]:
    lines = [
        "| key, mode | " + " | ".join(f"{n} FD + {m} W + {k} shards" for n, m, k in fleets) + " |",
        "|---|" + "---:|" * len(fleets),
    ]
    for name, model in models.items():
        cells = []
        for n, m, k in fleets:
            rps, first = model.fleet(n, m, k)
            cells.append(f"{rps:,.0f} ({first})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def sizing_lines(models: dict[str, Model], targets_rps: list[float]) -> list[str]:
    lines = [
        "| key, mode | target rps | front doors (80%) | workers (80%) | Redis shards |",
        "|---|---:|---:|---:|---|",
    ]
    for name, model in models.items():
        for target in targets_rps:
            n, m, k = model.size(target)
            cap = f"none: the pinned slots cap Redis at {model.redis_ceiling_rps:,.0f}"
            shards = "1 (no cluster)" if k == 1 else cap if k is None else str(k)
            lines.append(f"| {name} | {target:,.0f} | {n} | {m} | {shards} |")
    return lines


def idle_lines(setup: str, phase: Phase) -> list[str]:
    """What each part spends per second with no request (left out of the figures above)."""
    cells = ", ".join(f"{part} {rate * 1e3:.1f}" for part, rate in phase.idle_per_s.items())
    return [f"Idle CPU, {setup} (ms per second, left out of the per-request figures): {cells}."]


def command_table(single: Phase, cluster: Phase | None, top: int = 14) -> list[str]:
    """Redis commands per request by name, side by side: what the cluster adds."""

    def by_name(phase: Phase) -> Counter[str]:
        calls: Counter[str] = Counter()
        for used in phase.shards.values():
            calls.update({c: n for c, n in used.items() if c[0] != "(" and n > 0})
        return calls

    ours = by_name(single)
    theirs = by_name(cluster) if cluster is not None else Counter[str]()
    names = [name for name, _ in (ours + theirs).most_common(top)]
    if cluster is not None:  # and whatever differs by a fifth of a call or more
        differ = {
            n
            for n in ours | theirs
            if abs(theirs[n] / cluster.requests - ours[n] / single.requests) >= 0.2
        }
        names += sorted(differ - set(names))
    lines = [
        f"| command ({single.key}, {single.mode}) | single Redis / request | cluster / request |",
        "|---|---:|---:|",
    ]
    for name in names:
        there = f"{cluster.per_request(theirs[name]):.2f}" if cluster is not None else "-"
        lines.append(f"| {name} | {single.per_request(ours[name]):.2f} | {there} |")
    return lines
