"""`switchboard_settings.files` and `switchboard_settings.batches` (issue #20): where
uploaded files live and how big they may be; the batch lane and how much of a worker it
may hold."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from workers.settings.section import Section

Positive = Meta(gt=0)
# OpenAI's own caps: 200 MB per batch input file, 50,000 lines per batch.
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1000 * 1000
DEFAULT_MAX_BATCH_LINES = 50_000


class FileSettings(Section, frozen=True):
    # Directory of uploaded and generated files. None: `files/` in the data directory
    # (`--data-dir`, $SWITCHBOARD_DATA_DIR, else ./switchboard-data), which `up` uses too.
    # Several front doors need the same directory (a shared volume).
    storage_dir: str | None = None
    # Bytes one upload may hold; more is a 413 and nothing is kept.
    max_upload_bytes: Annotated[int, Positive] = DEFAULT_MAX_UPLOAD_BYTES


class BatchSettings(Section, frozen=True):
    # The request stream batch lines are queued on. Workers read it after every other lane,
    # and only with spare slots (max_share).
    lane: Annotated[str, Meta(min_length=1)] = "batches"
    # The share of a worker's slots batch lines may hold: the rest stays free for
    # interactive requests, which never wait behind a batch for a slot.
    max_share: Annotated[float, Meta(gt=0, le=1)] = 0.75
    # Milliseconds of event-loop lag (a process short of CPU) past which a worker running
    # interactive requests halves the batch lines it may hold (its pace, which otherwise
    # grows a line every 0.1 s) and a runner pauses queuing: batch lines use the CPU
    # interactive traffic leaves, not only its free slots. 0: never back off.
    busy_loop_lag_ms: Annotated[float, Meta(ge=0)] = 5.0
    # Steps of CPU priority (nice) a process given to batches alone (`switchboard worker
    # --batches`, which `up` starts) takes below the one that started it: the kernel, not
    # an event loop, then runs interactive work first and batch work on the CPU it leaves.
    nice: Annotated[int, Meta(ge=0, le=19)] = 19
    # And it runs under Linux's SCHED_IDLE: any other process that wakes takes the CPU
    # from it at once (under nice alone, a batch step may first finish its time slice, a
    # millisecond or more, at each hop of an interactive request). It still runs, slowly,
    # on a machine that is never idle.
    sched_idle: bool = True
    # Lines one batch may hold.
    max_lines: Annotated[int, Positive] = DEFAULT_MAX_BATCH_LINES
    # Lines of one batch queued or running at once (its runner's window).
    window: Annotated[int, Positive] = 256
    # Batches one front door runs at once; more wait for a free runner.
    max_running: Annotated[int, Positive] = 4
    # Seconds a batch runner's lease lasts without renewal: after a front door dies, its
    # batches go on elsewhere (or after its restart) within this.
    lease_s: Annotated[float, Positive] = 5.0
    # Native batches (model_info.batch_mode `native`): seconds before the first look at
    # the provider's batch, growing by half each look up to native_max_poll_s.
    native_poll_s: Annotated[float, Positive] = 5.0
    native_max_poll_s: Annotated[float, Positive] = 60.0
    # A native line's cost as a share of the interactive price: OpenAI's and Anthropic's
    # batch APIs both bill half, and the price table lists standard prices only.
    native_price_factor: Annotated[float, Meta(ge=0)] = 0.5
