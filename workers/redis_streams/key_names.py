"""Every Redis key name and field name Switchboard uses, and the small helpers the
operation modules beside it share.

Layout (namespace `ns`: switchboard_settings.namespace):

    {ns}:{q}:lane:<lane>      request stream per lane; consumer group "workers"
    {ns}:{q}:dead             dead-letter stream (entries delivered too often)
    {ns}:{<rid>}:reply        reply stream of one request (expires reply_ttl_s after its end)
    {ns}:{<rid>}:state        who owns a disconnected request: "cancelled" or "resumed:<fd>"
    {ns}:live:<front door>    pub/sub: records for the requests a front door waits on
    {ns}:cancel               pub/sub: request ids whose clients went away
    {ns}:console:<sid hash>   string: a console session (broker/console/sessions.py), expires
    {ns}:gone                 pub/sub: ids of workers known dead (their entries: take over now)
    {ns}:{w}:heartbeats       sorted set: worker id -> last heartbeat (Redis's clock, unix s)
    {ns}:{w}:worker:<id>      hash: a worker's self-description, expires with its heartbeat
    {ns}:{rt:<group>}:owners      sorted set: routing owner (a worker) -> expiry (unix ms)
    {ns}:{rt:<group>}:inflight    hash: "<owner>|<deployment>" -> requests in flight
    {ns}:{rt:<group>}:stats       hash: "lat|<d>", "ttft|<d>" -> moving averages (ms)
    {ns}:{rt:<group>}:usage:<min> hash: "rpm|<d>", "tpm|<d>", "fail|<d>|<class>" per minute
    {ns}:{rt:<group>}:cooldowns   hash: deployment -> cooled down until (unix ms)
    {ns}:{rt:<group>}:cursor      counter for round-robin
    {ns}:{q}:t:mirror:<kind>:<id> string: a key, team, user, member, customer or org as
                                  mirrored from the database (workers/tenancy/mirror.py)
    {ns}:{q}:t:sc:<scope>         hash: one scope's window totals R, T, oldest o, newest
                                  l; leases P; budget S (spent), V (reserved), E (period
                                  end, ms)
    {ns}:{q}:t:win:<scope>        hash: that window's buckets "r<unix s>", "t<unix s>"
    {ns}:{q}:t:res:<rid>          hash: one admitted request's reservation, until settled
    {ns}:{q}:t:inflight           sorted set: admitted request id -> reservation expiry (ms)
    {ns}:{q}:t:ledger             stream: finished-request events; groups "ledger" (spend)
                                  and "callbacks" (issue #19)
    {ns}:{q}:t:mirror-filled      string: the mirror was refilled from the database
    {ns}:{q}:t:ledger-dead        stream: spend events the database refused, with the error
    {ns}:tenancy                  pub/sub: mirrored entities that changed ("<kind>:<id>")

Braces are Redis Cluster hash tags: a request's keys share a slot, and all lanes share one
slot so one XREADGROUP reads every lane without a cross-slot command. The tenancy keys
(`t:`) share the lanes' slot too: admission checks every limit and XADDs the request in one
script, which in a cluster must touch one slot (issue #17). A model group's
routing keys share a slot, so each routing script touches one slot (workers/routing/).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from redis.asyncio import Redis

GROUP = "workers"
ENVELOPE_FIELD = b"e"
RECORD_FIELD = b"r"
DEAD_LETTER_MAXLEN = 100_000
STATE_CANCELLED = b"cancelled"


class Keys:
    """Key names for one namespace (tests use one namespace each)."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self.dead_letter = f"{namespace}:{{q}}:dead"
        self.cancel_channel = f"{namespace}:cancel"
        self.gone_channel = f"{namespace}:gone"
        self.heartbeats = f"{namespace}:{{w}}:heartbeats"
        # In the lanes' slot: whatever loses the queues loses this too.
        self.epoch = f"{namespace}:{{q}}:epoch"

    def lane(self, lane: str) -> str:
        return f"{self.ns}:{{q}}:lane:{lane}"

    def reply(self, request_id: str) -> str:
        return f"{self.ns}:{{{request_id}}}:reply"

    def state(self, request_id: str) -> str:
        return f"{self.ns}:{{{request_id}}}:state"

    def live_channel(self, front_door_id: str) -> str:
        return f"{self.ns}:live:{front_door_id}"

    def console_session(self, sid_hash: str) -> str:
        return f"{self.ns}:console:{sid_hash}"

    def worker_info(self, worker_id: str) -> str:
        return f"{self.ns}:{{w}}:worker:{worker_id}"

    def response(self, response_id: str) -> str:
        """A stored Responses API response (issue #18). Its id carries its conversation's
        tag (workers/ingress/response_store.py), so a chain of responses shares one slot and
        one script walks it."""
        return self.responses(response_id[5:21]) + response_id

    def responses(self, conversation: str) -> str:
        """The prefix of one conversation's stored responses."""
        return f"{self.ns}:{{r:{conversation}}}:resp:"

    def provider_response(self, response_id: str) -> str:
        """Whose a provider-made response id is (a native /v1/responses reply, issue #18):
        a hash of the owner and the deployment that holds the response. Its own slot: the
        id is the provider's and carries no conversation tag."""
        return f"{self.ns}:presp:{response_id}"

    def routing(self, group: str) -> RoutingKeys:
        return RoutingKeys(f"{self.ns}:{{rt:{group}}}")

    def cached_answer(self, namespace: str, digest: str) -> str:
        """A response cache entry (issue #19; broker/response_cache.py): a plain string with
        its own TTL, read and written on its own, so it needs no hash tag."""
        return f"{self.ns}:cache:{namespace}:{digest}"

    def cached_answer_lock(self, answer_key: str) -> str:
        """Held (SET NX, expiring) by the one request that goes upstream for an answer
        while identical ones wait for it (`cache_params.coalesce`)."""
        return f"{answer_key}:lock"

    @property
    def tenancy(self) -> TenancyKeys:
        return TenancyKeys(f"{self.ns}:{{q}}:t", f"{self.ns}:tenancy")

    def batch(self, batch_id: str) -> BatchKeys:
        return BatchKeys(self.ns, batch_id)


class TenancyKeys:
    """Keys, limits, budgets and spend of issue #17 (workers/tenancy/). A scope names what a
    limit counts: `key:<hash>`, `team:<id>`, `user:<id>`, `member:<team>:<user>`,
    `customer:<id>`, `org:<id>`, `model:<key hash>:<group>` or `global`."""

    LEDGER_GROUP = "ledger"
    EVENT_FIELD = b"e"
    WORKER_FIELD = b"w"
    SOFT_FIELD = b"x"
    REQUEST_FIELD = b"id"
    CHARGED_FIELD = b"c"
    # The callbacks' part of a finished request's event (workers/tenancy/events.py
    # FinishedCall), read by its own consumer group (issue #19).
    CALL_FIELD = b"cb"
    # A batch of spans a front door saw end (workers/tenancy/events.py FrontSpan), for the
    # callbacks' group alone: the ledger skips it.
    FRONT_SPANS_FIELD = b"fs"
    CALLBACKS_GROUP = "callbacks"

    def __init__(self, prefix: str, channel: str) -> None:
        self.prefix = prefix
        self.channel = channel
        self.inflight = f"{prefix}:inflight"
        self.ledger = f"{prefix}:ledger"
        # Spend events the database refused to store (a row it cannot hold), kept to see.
        self.ledger_dead = f"{prefix}:ledger-dead"
        # Set once the mirror was refilled from the database (gone with Redis's data).
        self.filled = f"{prefix}:mirror-filled"

    def mirror(self, kind: str, object_id: str) -> str:
        return f"{self.prefix}:mirror:{kind}:{object_id}"

    def scope(self, scope: str) -> str:
        """One scope's counters (workers/tenancy/admission.py names the fields). `sc`, not
        the first layout's `scope`, whose hashes also held the window's buckets: those are
        left behind, and a counter missing here is seeded from the database."""
        return f"{self.prefix}:sc:{scope}"

    def window(self, scope: str) -> str:
        """One scope's rpm/tpm buckets, a field per second (kept apart from its counters:
        see workers/tenancy/admission.py)."""
        return f"{self.prefix}:win:{scope}"

    def reservation(self, request_id: str) -> str:
        return f"{self.prefix}:res:{request_id}"

    def charged(self, batch_id: str) -> str:
        """The lines of a native batch already charged (workers/tenancy/charge.py): a set,
        so a runner that starts again never charges a line twice."""
        return f"{self.prefix}:charged:{batch_id}"


class BatchKeys:
    """One batch's control keys (issue #20): who runs it, whether it is to stop, and which
    of its lines are queued."""

    def __init__(self, namespace: str, batch_id: str) -> None:
        self.active = f"{namespace}:batches:active"
        self.lease = f"{namespace}:batch:{batch_id}:lease"
        self.cancel = f"{namespace}:batch:{batch_id}:cancel"
        self.sent = f"{namespace}:batch:{batch_id}:sent"
        # A provider batch this batch was handed to (native mode), for as long as another
        # runner might otherwise take it for its own (broker/batches/native_anthropic.py).
        self.claim_prefix = f"{namespace}:batches:native-claim:"
        # Held by the one batch submitting to a deployment's batch API that cannot be told
        # which batch is whose (Anthropic's): the other submits wait.
        self.submit_prefix = f"{namespace}:batches:native-submit:"

    def native_claim(self, provider_batch_id: str) -> str:
        return self.claim_prefix + provider_batch_id

    def native_submit(self, deployment: str) -> str:
        return self.submit_prefix + deployment


class RoutingKeys:
    """One model group's live routing figures (workers/routing/redis_store.py)."""

    # Usage counters outlive their minute a little so a late reader still finds them.
    USAGE_TTL_S = 120

    def __init__(self, prefix: str) -> None:
        self.owners = f"{prefix}:owners"
        self.inflight = f"{prefix}:inflight"
        self.stats = f"{prefix}:stats"
        self.cooldowns = f"{prefix}:cooldowns"
        self.cursor = f"{prefix}:cursor"
        self._prefix = prefix

    def usage(self, minute: int) -> str:
        return f"{self._prefix}:usage:{minute}"


def entry_id(seq: int) -> str:
    """The reply-stream entry id of the record whose first event is `seq`."""
    return f"0-{seq}"


def seq_of(entry: bytes | str) -> int:
    text = entry.decode() if isinstance(entry, bytes) else entry
    return int(text.partition("-")[2])


# --------------------------------------------------------------------------- request streams


async def run_script(r: Redis, script: str, key: str, *args: Any) -> Any:
    """A one-key script's reply (redis-py types EVAL for its sync and async clients at once)."""
    return await cast("Awaitable[Any]", r.eval(script, 1, key, *args))


def as_text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
