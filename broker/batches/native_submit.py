"""Submitting a native batch at most once (issue #20): finding the provider batch a create
call made when its runner died before it recorded the answer.

OpenAI's batch carries our batch id in its metadata: found exactly. An Anthropic Message
Batch carries nothing of ours, so it is found by its size and time (native_anthropic.py's
find): the runner records when the call went out and how many requests it sent before it
makes the call. For that to single out our batch, submits to such a deployment take turns
(a lock in Redis, held from the call until its answer is recorded, taken back at once by
the same batch's next runner), and a provider batch once recorded is claimed by its batch,
so no other one adopts it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from broker.batches.native_results import ProviderBatches
from broker.batches.records import NativeState
from broker.frontdoor import FrontDoor
from workers import redis_streams

log = logging.getLogger("switchboard.batches")

# A provider batch may be listed a little after its create call was answered (or cut):
# until this long after the call, an empty look is made again before submitting again.
SETTLE_S = 30
# How long a batch may hold a deployment's turn to submit (the call's upload included)
# before another batch takes it.
SUBMIT_HOLD_S = 600
# How long a provider batch stays claimed: past the providers' 24-hour window.
CLAIM_TTL_S = 3 * 24 * 3600


class SubmitTurn:
    def __init__(self, front: FrontDoor, batch_id: str, native: NativeState) -> None:
        self.redis = front.redis
        self.keys = front.keys
        self.batch_id = batch_id
        self.native = native

    async def find(self, api: ProviderBatches) -> str | None:
        """The provider batch the last create call made, if it was made."""
        native = self.native
        assert native.submitted_at is not None
        while True:
            found = await self._unclaimed(
                await api.find(self.batch_id, native.submitted_at, native.submitted_lines)
            )
            wait_s = native.submitted_at + SETTLE_S - time.time()
            if found or api.marks_batches or wait_s <= 0:
                break
            await asyncio.sleep(min(wait_s, 1.0))
        if len(found) > 1:
            log.warning(
                "batch %s: %d provider batches of its size were made when its own was; "
                "taking the first, %s",
                self.batch_id,
                len(found),
                found[0],
            )
        return found[0] if found else None

    async def _unclaimed(self, candidates: list[str]) -> list[str]:
        """The candidates no other batch of ours adopted."""
        claims = await redis_streams.native_claims(self.redis, self.keys, candidates)
        return [found for found in candidates if claims.get(found, self.batch_id) == self.batch_id]

    async def take(self) -> bool:
        """This deployment's turn to submit, if no other batch holds it."""
        return await redis_streams.take_native_submit(
            self.redis, self.keys, self.native.deployment, self.batch_id, SUBMIT_HOLD_S * 1000
        )

    async def settle(self, api: ProviderBatches) -> None:
        """The hand-over is settled: claim the provider batch and give the turn back."""
        native = self.native
        if native.batch_id is not None:
            await redis_streams.claim_native_batch(
                self.redis, self.keys, native.batch_id, self.batch_id, CLAIM_TTL_S
            )
        if not api.marks_batches:
            await redis_streams.release_native_submit(
                self.redis, self.keys, native.deployment, self.batch_id
            )
