"""A native batch's results as what Switchboard keeps of them: the output and error lines
in OpenAI's format, each line's cost at the batch price, and its spend event."""

from __future__ import annotations

import hashlib
import time

import msgspec

from broker.batches import output
from broker.batches.native_results import Result
from workers import accounting
from workers.deployment import Deployment
from workers.envelopes import RESPONSE, Record
from workers.tenancy import events

# Lines the provider never ran because the batch was cancelled: left out, as on the lane.
NOT_RUN = frozenset({"batch_canceled", "batch_cancelled"})


class Written(msgspec.Struct):
    good: list[bytes]  # for the output file
    bad: list[bytes]  # for the error file
    # (guard member, spend request id, the worker's half of the spend event) per line.
    charges: list[tuple[str, str, events.WorkerEvent]]
    cost_usd: float


def written(
    results: list[Result], batch_id: str, deployment: Deployment, price_factor: float
) -> Written:
    out = Written([], [], [], 0.0)
    now_ms = int(time.time() * 1000)
    for result in results:
        if result.status is None:
            if result.error_code not in NOT_RUN:
                code, message = result.error_code, result.error_message
                out.bad.append(output.error_line(result.custom_id, code, message))
            continue
        if result.status == 200:
            record = Record(seq=1, end=RESPONSE, body=result.body)
            out.good.append(output.result_line(result.custom_id, result.request_id, record)[1])
        else:
            line = output.failed_line(
                result.custom_id, result.request_id, result.status, result.body
            )
            out.bad.append(line)
        # The price table lists interactive prices; both batch APIs bill a share of them.
        cost_usd = (accounting.cost_for(result.usage, deployment).cost_usd or 0.0) * price_factor
        out.cost_usd += cost_usd
        out.charges.append(_charge(result, batch_id, deployment, cost_usd, now_ms))
    return out


def _charge(
    result: Result, batch_id: str, deployment: Deployment, cost_usd: float, now_ms: int
) -> tuple[str, str, events.WorkerEvent]:
    usage = result.usage
    event = events.WorkerEvent(
        end_ms=now_ms,
        status=events.SUCCESS if result.status == 200 else events.FAILURE,
        deployment=deployment.label,
        provider=deployment.provider,
        prompt_tokens=usage.prompt_tokens if usage is not None else 0,
        completion_tokens=usage.completion_tokens if usage is not None else 0,
        spend=cost_usd,
    )
    # Derived, not random: a line charged again after a crash has the same spend row id.
    digest = hashlib.sha256(f"{batch_id}\n{result.custom_id}".encode()).hexdigest()
    return result.custom_id, f"batchreq-{digest[:32]}", event
