"""The Redis mirror of keys, teams, users, members, organizations, customers and budgets:
what every front door authenticates and limits from, so the request path never waits on
the database (issue #17; LiteLLM #38121: a database outage turned valid keys into 401s).

The management API writes the database, then the mirror (`publish`), which also tells every
front door on `{ns}:tenancy` to drop its copy. A mirror entry Redis lost (a restart, a cold
start) is refilled from the database on first use (`load`); an id the database does not
know is remembered as absent for a few seconds, so a spray of made-up keys costs the
database one query per key per few seconds, not one per request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from workers.redis_streams import TenancyKeys
from workers.tenancy import records
from workers.tenancy.records import Entity

if TYPE_CHECKING:  # the database's modules load with a database (issue #22's memory)
    from sqlalchemy.ext.asyncio import AsyncConnection

    from workers.db.engine import Database

ABSENT = b"-"
ABSENT_TTL_S = 5
Ref = tuple[str, str]  # (kind, id)


async def _row(conn: AsyncConnection, kind: str, object_id: str) -> dict[str, Any] | None:
    from workers.db import budgets, customers, organizations, teams, users
    from workers.db import keys as db_keys

    if kind == records.KEY:
        return await db_keys.get(conn, object_id)
    if kind == records.MEMBER:
        team_id, _, user_id = object_id.partition("/")
        return await teams.membership(conn, team_id, user_id)
    getters = {
        records.TEAM: teams.get,
        records.USER: users.get,
        records.ORG: organizations.get,
        records.CUSTOMER: customers.get,
        records.BUDGET: budgets.get,
    }
    return await getters[kind](conn, object_id)


async def from_database(database: Database, refs: Sequence[Ref]) -> list[Entity | None]:
    """The entities `refs` name, read from the system of record in one transaction.
    Raises DatabaseUnavailable when it cannot be reached."""
    from workers.db.rows import now
    from workers.tenancy.seeds import Seeder

    found: list[Entity | None] = []
    async with database.transaction() as conn:
        seeder = Seeder(conn, now())
        for kind, object_id in refs:
            row = await _row(conn, kind, object_id)
            entity = None if row is None else records.entity_of(kind, object_id, row)
            found.append(None if entity is None else await seeder.seeded(entity))
    return found


async def read(redis: Redis, keys: TenancyKeys, refs: Sequence[Ref]) -> list[bytes | None]:
    """The mirrored entries of `refs` (one MGET: they share a slot); None where Redis has
    none, `ABSENT` where the database had none."""
    if not refs:
        return []
    raw: list[Any] = await redis.mget([keys.mirror(kind, oid) for kind, oid in refs])
    return [None if value is None else bytes(value) for value in raw]


async def store(
    redis: Redis, keys: TenancyKeys, refs: Sequence[Ref], entities: Sequence[Entity | None]
) -> None:
    """Mirror what the database said (without telling anyone: nothing changed)."""
    pipe = redis.pipeline(transaction=False)
    for (kind, oid), entity in zip(refs, entities, strict=True):
        if entity is None:
            pipe.set(keys.mirror(kind, oid), ABSENT, ex=ABSENT_TTL_S, nx=True)
        else:
            pipe.set(keys.mirror(kind, oid), records.encode(entity))
    await pipe.execute()


async def publish(
    redis: Redis,
    keys: TenancyKeys,
    kind: str,
    oid: str,
    entity: Entity | None,
    *,
    reset_spend: bool = False,
) -> None:
    """A changed entity: mirror it (or forget it), and tell every front door to drop its copy.
    A deleted entity's counters go with it; with `reset_spend` (an admin set its spend or
    restarted its period), its budget counter takes the database's spend and period end."""
    pipe = redis.pipeline(transaction=False)
    if entity is None:
        pipe.delete(keys.mirror(kind, oid))
        if kind in SCOPE_PREFIX:
            pipe.delete(keys.scope(scope_of(kind, oid)), keys.window(scope_of(kind, oid)))
    else:
        pipe.set(keys.mirror(kind, oid), records.encode(entity))
        if reset_spend and kind in SCOPE_PREFIX:
            ends = entity.limits.reset_at_ms
            # Field names: workers/tenancy/admission.py (S spent, E period end).
            fields: dict[str, Any] = {"S": repr(entity.spend), "E": -1 if ends is None else ends}
            pipe.hset(keys.scope(scope_of(kind, oid)), mapping=fields)
    pipe.publish(keys.channel, f"{kind}:{oid}")
    await pipe.execute()


def message_ref(message: bytes | str) -> Ref:
    text = message.decode() if isinstance(message, bytes) else message
    kind, _, oid = text.partition(":")
    return kind, oid


# The prefix of the scope an entity's counters go by (workers.redis_streams.TenancyKeys).
SCOPE_PREFIX = {
    records.KEY: "key",
    records.TEAM: "team",
    records.USER: "user",
    records.MEMBER: "member",
    records.ORG: "org",
    records.CUSTOMER: "customer",
}


def scope_of(kind: str, oid: str) -> str:
    return f"{SCOPE_PREFIX[kind]}:{oid}"


async def refill(redis: Redis, keys: TenancyKeys, database: Database) -> int:
    """Mirror every key, team, user, member, organization, customer and budget, once per
    Redis dataset (the first front door to start after Redis lost its data does it); an
    entry already there is newer and stays. How many entries were written."""
    from workers.db import snapshot
    from workers.db.rows import now
    from workers.tenancy.seeds import Seeder

    if not await redis.set(keys.filled, b"1", nx=True):
        return 0
    written = 0
    try:
        async with database.transaction() as conn:
            seeder = Seeder(conn, now())
            for kind in records.KINDS:
                pipe = redis.pipeline(transaction=False)
                async for oid, row in snapshot.every_row(conn, kind):
                    entity = await seeder.seeded(records.entity_of(kind, oid, row))
                    pipe.set(keys.mirror(kind, oid), records.encode(entity), nx=True)
                    written += 1
                    if len(pipe) >= snapshot.PAGE:  # bounded pipelines, however many rows
                        await pipe.execute()
                await pipe.execute()
    except BaseException:
        await redis.delete(keys.filled)  # the next front door to start tries again
        raise
    return written
