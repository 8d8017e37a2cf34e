"""A batch whose lines name several model groups, some of them sent to a provider's own
batch API (issue #20): split at create, by where each line's model runs, into one part
per provider hand-over (the groups sharing a native deployment) and one part for the
batch lane (every other group). Each part is a batch of its own (its own input, record
and runner, left out of the list), so each line runs where its own model says, as it
would in a batch of that model alone. The batch the client made stands over its parts
(broker/batches/parts.py): its status, counts and cost are theirs, and its output and
error files theirs, joined when the last one ends.

A batch of one part (every line native on one deployment, or none native) is not split:
native_target.choose or the batch lane runs it whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from broker.auth import Caller
from broker.batches.endpoints import ENDPOINTS
from broker.batches.lines import parse_line, split_lines
from broker.batches.native_target import NATIVE_ENDPOINTS, native_deployment
from broker.batches.records import (
    Batch,
    BatchRecord,
    BatchStore,
    NativeState,
    RequestCounts,
    new_batch_id,
)
from broker.files.registry import new_file_id
from broker.files.storage import BlobStore
from broker.frontdoor import FrontDoor
from workers.deployment import Deployment

# The part of the lines that run on the batch lane.
LANE = ""
# Bytes of a part's input held before they are appended to its file.
FLUSH_BYTES = 256 * 1024


class Part(msgspec.Struct):
    native: NativeState | None  # None: the batch lane
    groups: set[str]
    input_key: str = ""
    lines: int = 0


def plan(
    deployments: Mapping[str, Sequence[Deployment]], endpoint: str, groups: Mapping[str, str]
) -> dict[str, Part] | None:
    """The parts (by native deployment label, LANE for the batch lane) of a batch whose
    lines name `groups` (group -> a model name of it); None: one part, no split."""
    parts: dict[str, Part] = {}
    for group, model in groups.items():
        found = native_deployment(deployments.get(group, ()))
        if found is None or endpoint not in NATIVE_ENDPOINTS.get(found.provider, ()):
            parts.setdefault(LANE, Part(native=None, groups=set())).groups.add(group)
            continue
        native = NativeState(
            provider=found.provider, group=group, deployment=found.label, model=model
        )
        parts.setdefault(found.label, Part(native=native, groups=set())).groups.add(group)
    return parts if len(parts) > 1 else None


async def write_inputs(
    store: BlobStore,
    input_file_id: str,
    endpoint: str,
    parts: dict[str, Part],
    front: FrontDoor,
    caller: Caller,
) -> None:
    """Each part's lines, in input order, to a file of its own (read and written as a
    stream: an input is never held whole)."""
    by_group = {group: part for part in parts.values() for group in part.groups}
    held: dict[str, list[bytes]] = {}
    for part in parts.values():
        part.input_key = new_file_id()
        held[part.input_key] = []
    check = ENDPOINTS[endpoint].check
    chunks = store.read_stream(input_file_id)
    async for line in split_lines(chunks, front.settings.max_body_bytes):
        if not line.strip():
            continue
        request = check(bytes(parse_line(line, endpoint).body), front.limits)
        part = by_group[front.resolve_group(request.model, caller)]
        part.lines += 1
        pending = held[part.input_key]
        pending.append(line + b"\n")
        if sum(len(piece) for piece in pending) >= FLUSH_BYTES:
            await store.append(part.input_key, b"".join(pending))
            pending.clear()
    for key, pending in held.items():
        await store.append(key, b"".join(pending))


async def save_parts(batches: BatchStore, whole: BatchRecord, parts: dict[str, Part]) -> list[str]:
    """A record for each part (not yet active: the whole batch's runner starts them)."""
    ids: list[str] = []
    batch = whole.batch
    for part in parts.values():
        record = BatchRecord(
            batch=Batch(
                id=new_batch_id(),
                endpoint=batch.endpoint,
                input_file_id=part.input_key,
                completion_window=batch.completion_window,
                created_at=batch.created_at,
                expires_at=batch.expires_at,
                request_counts=RequestCounts(total=part.lines),
            ),
            owner=whole.owner,
            token=whole.token,
            output_key=new_file_id(),
            error_key=new_file_id(),
            native=part.native,
            parent=batch.id,
        )
        await batches.put(record)
        ids.append(record.batch.id)
    return ids
