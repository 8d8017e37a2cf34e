"""A native batch (issue #20), run by the front door holding its lease like any batch
(broker/batches/runner.py): its lines handed to the provider's batch API as one batch,
the provider polled with backoff, and its results copied into the batch's own output and
error files in OpenAI's line format, each line charged to the batch's key.

Crash safety: each step is recorded in the batch record before the next one starts.
`submitted_at` is written before the create call and the provider's batch id as soon as
it answers, so a runner that starts again polls that batch (or, after a crash between the
two, looks for it: native_openai.py's find) instead of submitting again. Results are
charged (guarded per line) before they are appended, and a line already in the files is
skipped, so after any crash each custom_id appears once and is charged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from broker.auth import Caller
from broker.batches import native_lines, output
from broker.batches.endpoints import ENDPOINTS
from broker.batches.job import _tagged, fail_batch
from broker.batches.lines import LineTooLong, parse_line, split_lines
from broker.batches.metrics import BatchMetrics
from broker.batches.native_anthropic import AnthropicBatches
from broker.batches.native_openai import OpenAIBatches
from broker.batches.native_results import ProviderBatches, Result
from broker.batches.native_submit import SubmitTurn
from broker.batches.native_target import find_deployment
from broker.batches.records import BatchRecord, BatchStore, NativeState, RequestCounts
from broker.files.registry import FileRegistry
from broker.frontdoor import FrontDoor
from workers import redis_streams
from workers.deployment import Deployment
from workers.errors import BudgetExceeded, SwitchboardError
from workers.http import HttpClient
from workers.tenancy import charge
from workers.tenancy.admission import Ticket

log = logging.getLogger("switchboard.batches")

# The longest a cancel waits to be seen while the poller sleeps between looks.
CANCEL_CHECK_S = 1.0
BACKOFF = 1.5
WRITE_EVERY = 256  # results appended (and charged) per round
# How often a batch waiting for its turn to submit looks again.
SUBMIT_WAIT_S = 1.0
# Failures in a row (a provider down, its answers unreadable) before the batch fails:
# with the backoff capped at native_max_poll_s, half an hour at the default.
MAX_ATTEMPTS = 30


class NativeJob:
    def __init__(
        self,
        front: FrontDoor,
        files: FileRegistry,
        batches: BatchStore,
        record: BatchRecord,
        caller: Caller,
        metrics: BatchMetrics | None = None,
    ) -> None:
        assert record.native is not None
        self.front = front
        self.files = files
        self.store = files.store
        self.batches = batches
        self.record = record
        self.batch = record.batch
        self.native: NativeState = record.native
        self.caller = caller
        self.metrics = metrics
        self.settings = front.settings.batches
        self.done: set[str] = set()
        self.stopping: str | None = None  # "cancelled" or "expired"
        self.ticket: Ticket | None = None
        self.provider_status = ""
        self.turn = SubmitTurn(front, record.batch.id, self.native)

    async def run(self) -> None:
        deployment = find_deployment(self.front.config.deployments, self.native)
        if deployment is None:
            message = f"The deployment `{self.native.deployment}` no longer takes native batches."
            await fail_batch(self.batches, self.record, message)
            return
        await self._start()
        if self.native.batch_id is not None:
            log.info(
                "batch %s resumes: polling its provider batch %s, %d lines written",
                self.batch.id,
                self.native.batch_id,
                len(self.done),
            )
        async with HttpClient(max_reply_bytes=self.front.settings.max_reply_bytes) as http:
            api = self._api(deployment, http)
            delay_s = self.settings.native_poll_s
            for attempt in range(MAX_ATTEMPTS):
                try:
                    await self._hand_over(api, deployment)
                    break
                except SwitchboardError as exc:
                    if not _is_transient(exc) or attempt == MAX_ATTEMPTS - 1:
                        message = f"The provider refused the batch: {exc.message}"
                        await fail_batch(self.batches, self.record, message)
                        return
                    # Each step is recorded, so going again resumes where this stopped.
                    log.warning("batch %s: the provider failed (%s); retrying", self.batch.id, exc)
                    await self._sleep(delay_s)
                    delay_s = min(delay_s * BACKOFF, self.settings.native_max_poll_s)
                except LineTooLong:
                    message = "The provider sent a result longer than max_reply_bytes."
                    await fail_batch(self.batches, self.record, message)
                    return
        await self._finish()

    async def _hand_over(self, api: ProviderBatches, deployment: Deployment) -> None:
        if self.native.batch_id is None and not self.native.ended:
            await self._submit(api)
        if self.native.batch_id is not None:
            await self._wait(api)
            await self._collect(api, deployment)

    def _api(self, deployment: Deployment, http: HttpClient) -> ProviderBatches:
        if deployment.provider == "anthropic":
            return AnthropicBatches(deployment, http, self.batch.endpoint)
        return OpenAIBatches(deployment, http, self.batch.endpoint)

    async def _start(self) -> None:
        self.done = await output.done_lines(self.store, self.record.output_key)
        completed = len(self.done)
        failed = await output.done_lines(self.store, self.record.error_key)
        self.done |= failed
        counts = self.batch.request_counts
        self.batch.request_counts = RequestCounts(counts.total, completed, len(failed))
        if self.batch.status == "validating":
            self.batch.status = "in_progress"
            self.batch.in_progress_at = int(time.time())
        endpoint = ENDPOINTS[self.batch.endpoint]
        ticket = await self.front.tenancy.ticket(
            self.caller,
            call_type=endpoint.call_type,
            model=self.native.model,
            group=self.native.group,
            body_bytes=0,
        )
        # A part's spend is its whole batch's (split.py): `batch:<id>` names what the client made.
        tag = self.record.parent or self.batch.id
        self.ticket = None if ticket is None else _tagged(ticket, tag)
        await self._stopping()
        await self.batches.put(self.record)

    # ------------------------------------------------------------------ hand-over

    async def _submit(self, api: ProviderBatches) -> None:
        native = self.native
        if native.submitted_at is not None and await self._found_again(api):
            return
        if self.stopping is not None:
            native.ended = True  # cancelled or expired before it was handed over
            await self._submitted(api)
            return
        if await self._over_budget():
            await self._submitted(api)
            return
        count = await self._refuse_untranslatable(api)
        if not count:
            native.ended = True
            await self._submitted(api)
            return
        if not api.marks_batches and not await self._take_submit():
            native.ended = True
            return
        native.submitted_at = int(time.time())
        native.submitted_lines = count
        await self.batches.put(self.record)
        try:
            native.batch_id = await api.submit(self.batch.id, self._provider_lines(api))
        except SwitchboardError as exc:
            if not _is_transient(exc):  # refused: no batch was made
                await self._submitted(api)
            raise  # else it may have been made: looked for again, still holding the turn
        await self.batches.put(self.record)
        await self._submitted(api)
        log.info("batch %s: %d lines handed to %s", self.batch.id, count, native.deployment)

    async def _found_again(self, api: ProviderBatches) -> bool:
        """After a crash between the create call and recording its answer: adopt the
        provider batch that call made, if it was made (native_submit.py)."""
        found = await self.turn.find(api)
        if found is None:
            return False
        log.info("batch %s: found its provider batch %s", self.batch.id, found)
        self.native.batch_id = found
        await self.batches.put(self.record)
        await self.turn.settle(api)
        return True

    async def _take_submit(self) -> bool:
        """Wait for this deployment's turn to submit; False: the batch was cancelled (or
        expired) meanwhile."""
        while not await self.turn.take():
            await self._sleep(SUBMIT_WAIT_S)
            if self.stopping is not None:
                return False
        return True

    async def _submitted(self, api: ProviderBatches) -> None:
        await self.turn.settle(api)

    async def _over_budget(self) -> bool:
        """A budget already spent fails every line with the budget error (as the batch
        lane does), and nothing is handed over."""
        ticket = self.ticket
        if ticket is None:
            return False
        spent = await charge.spent_scopes(self.front.redis, self.front.keys.tenancy, ticket.scopes)
        if not spent:
            return False
        refusal = BudgetExceeded(f"Budget has been exceeded for {spent[0]}")
        refused = [custom_id async for custom_id, _ in self._pending()]
        body = refusal.to_json()
        bad = [output.failed_line(c, "", refusal.http_status, body) for c in refused]
        self.done.update(refused)
        await self._append([], bad, 0.0)
        self.native.ended = True
        return True

    async def _pending(self) -> AsyncIterator[tuple[str, bytes]]:
        chunks = self.store.read_stream(self.batch.input_file_id)
        async for line in split_lines(chunks, self.front.settings.max_body_bytes):
            if line.strip():
                parsed = parse_line(line, self.batch.endpoint)
                if parsed.custom_id not in self.done:
                    yield parsed.custom_id, bytes(parsed.body)

    async def _refuse_untranslatable(self, api: ProviderBatches) -> int:
        """A pending line the provider's form refuses (a parameter it cannot take) gets
        its error line now, as it would interactively; how many lines remain to send."""
        count = 0
        refused: list[bytes] = []
        async for custom_id, body in self._pending():
            try:
                api.line(custom_id, body)
                count += 1
            except SwitchboardError as exc:
                refused.append(output.failed_line(custom_id, "", exc.http_status, exc.to_json()))
                self.done.add(custom_id)
        await self._append([], refused, 0.0)
        return count

    async def _provider_lines(self, api: ProviderBatches) -> AsyncIterator[bytes]:
        """The lines to send, in the provider's form, read from the input file as they go
        out (the upload is streamed, not held)."""
        async for custom_id, body in self._pending():
            yield api.line(custom_id, body)

    # ------------------------------------------------------------------ polling

    async def _stopping(self) -> None:
        if self.stopping is not None:
            return
        asked = await redis_streams.batch_cancel_requested(
            self.front.redis, self.front.keys, self.batch.id
        )
        if asked is not None:
            self.stopping = "cancelled"
            self.batch.status = "cancelling"
            self.batch.cancelling_at = asked
            await self.batches.put(self.record)
        elif time.time() >= self.batch.expires_at:
            self.stopping = "expired"

    async def _wait(self, api: ProviderBatches) -> None:
        """Poll until the provider's batch ends, forwarding a cancel or the window's end."""
        native = self.native
        assert native.batch_id is not None
        delay_s = self.settings.native_poll_s
        while not native.ended:
            await self._stopping()
            look = await api.look(native.batch_id)
            self.provider_status = look.status
            if look.is_ended:
                native.ended = True
                await self.batches.put(self.record)
                return
            if self.stopping is not None and not native.cancel_sent:
                await self._forward_cancel(api, native.batch_id)
            await self._sleep(delay_s)
            delay_s = min(delay_s * BACKOFF, self.settings.native_max_poll_s)

    async def _forward_cancel(self, api: ProviderBatches, provider_id: str) -> None:
        try:
            await api.cancel(provider_id)
        except SwitchboardError as exc:
            if _is_transient(exc):
                raise
            # The provider's batch most likely ended meanwhile: its results are copied.
            log.warning("batch %s: the provider refused the cancel: %s", self.batch.id, exc)
        self.native.cancel_sent = True
        await self.batches.put(self.record)

    async def _sleep(self, delay_s: float) -> None:
        """Sleep between looks; a cancel asked for (or the window's end) wakes it."""
        was_stopping = self.stopping is not None
        deadline = time.monotonic() + delay_s
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, CANCEL_CHECK_S))
            await self._stopping()
            if self.stopping is not None and not was_stopping:
                return

    # ------------------------------------------------------------------ results

    async def _collect(self, api: ProviderBatches, deployment: Deployment) -> None:
        assert self.native.batch_id is not None
        results: list[Result] = []
        async for result in api.results(self.native.batch_id):
            if result.custom_id in self.done:
                continue
            results.append(result)
            if len(results) >= WRITE_EVERY:
                await self._write(results, deployment)
                results = []
        await self._write(results, deployment)

    async def _write(self, results: list[Result], deployment: Deployment) -> None:
        factor = self.settings.native_price_factor
        written = native_lines.written(results, self.batch.id, deployment, factor)
        if self.ticket is not None:
            await charge.charge_lines(
                self.front.redis,
                self.front.keys.tenancy,
                self.batch.id,
                self.ticket.scopes,
                self.ticket.event,
                written.charges,
            )
        await self._append(written.good, written.bad, written.cost_usd)
        self.done.update(result.custom_id for result in results)

    async def _append(self, good: list[bytes], bad: list[bytes], cost_usd: float) -> None:
        """Append and sync before counting: the files are the truth after a crash."""
        if good:
            await self.store.append(self.record.output_key, b"".join(good))
        if bad:
            await self.store.append(self.record.error_key, b"".join(bad))
        counts = self.batch.request_counts
        counts.completed += len(good)
        counts.failed += len(bad)
        self.batch.cost_usd += cost_usd
        if self.metrics is not None:
            self.metrics.completed.inc(len(good))
            self.metrics.failed.inc(len(bad))
        await self.batches.put(self.record)

    # ------------------------------------------------------------------ the end

    async def _finish(self) -> None:
        await self._unaccounted()
        self.batch.status = "finalizing"
        self.batch.finalizing_at = int(time.time())
        await self.batches.put(self.record)
        await output.publish_files(self.files, self.record)
        status = self.stopping or "completed"
        self.batch.status = status
        setattr(self.batch, f"{status}_at", int(time.time()))
        await self.batches.put(self.record)
        counts = self.batch.request_counts
        log.info(
            "native batch %s %s: %d completed, %d failed of %d, $%.6f",
            self.batch.id,
            status,
            counts.completed,
            counts.failed,
            counts.total,
            self.batch.cost_usd,
        )

    async def _unaccounted(self) -> None:
        """Lines without a result: after a cancel they did not run (left out, as on the
        batch lane); otherwise each gets an error line saying why, never a silent gap."""
        if self.stopping == "cancelled":
            return
        if self.stopping == "expired":
            code = "batch_expired"
            message = "This request could not be executed before the completion window expired."
        else:
            code = "batch_line_missing"
            ended = f" ({self.provider_status})" if self.provider_status else ""
            message = f"The provider's batch ended{ended} without a result for this request."
        missing = [custom_id async for custom_id, _ in self._pending()]
        bad = [output.error_line(custom_id, code, message) for custom_id in missing]
        self.done.update(missing)
        await self._append([], bad, 0.0)


def _is_transient(exc: SwitchboardError) -> bool:
    """A failure that waiting may cure (a rate limit, an outage) rather than a refusal."""
    return exc.http_status in (408, 409, 429) or exc.http_status >= 500
