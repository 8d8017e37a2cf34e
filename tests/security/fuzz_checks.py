"""What the fuzz test checks in each answer and how it reports: problems grouped by what
they have in common, and the exceptions the service logged, by type and place."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.security.fuzz_cases import Case

# A body asking for a deadline this short may legitimately end in 504 `timeout_error`.
SHORT_DEADLINE_S = 10.0
REQUEST_ID = re.compile(r"req_[0-9a-f]+")
# Error types that stand for a 5xx: inside a 200 stream they are what a status would have said.
SERVER_ERROR_TYPES = {"api_error", "internal_error", "service_unavailable_error"}
ANTHROPIC_SERVER_ERROR_TYPES = {"api_error", "overloaded_error"}


def kind_of(case: Case) -> str:
    """The tags without their values: what cases failing alike have in common."""
    return ", ".join(sorted({tag.split("=")[0] for tag in case.tags})) or "no mutation"


def describe(case: Case) -> str:
    return f"{case.method} {case.path[:60]} tags={case.tags} body={(case.body or b'')[:160]!r}"


@dataclass
class Tally:
    """What came back: counts by operation and status, and every problem, grouped."""

    sent: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    unsent: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    problem_counts: collections.Counter[tuple[str, ...]] = field(
        default_factory=collections.Counter
    )

    def problem(self, key: tuple[str, ...], example: str) -> None:
        self.problem_counts[key] += 1
        self.problems.setdefault(key, [])
        if len(self.problems[key]) < 3:
            self.problems[key].append(example)

    def summary(self, seconds: float, probes: int, causes: collections.Counter[str]) -> str:
        lines = [
            f"fuzz: {sum(self.sent.values())} requests and {probes} raw probes in {seconds:.0f} s",
            "  by operation: " + ", ".join(f"{k} {v}" for k, v in sorted(self.sent.items())),
            "  statuses: " + ", ".join(f"{k}×{v}" for k, v in sorted(self.statuses.items())),
        ]
        if self.unsent:
            lines.append(f"  not sent (the client refused): {dict(self.unsent)}")
        if causes:
            lines.append("  exceptions the service logged (type, where, logger):")
            lines += [f"  - {count}× {cause}" for cause, count in causes.most_common()]
        lines.append(f"  distinct problems: {len(self.problems)}")
        for key, examples in sorted(self.problems.items()):
            lines.append(f"  - {self.problem_counts[key]}× {' | '.join(key)}")
            lines += [f"      e.g. {example}" for example in examples]
        return "\n".join(lines)


def error_shape_problem(body: bytes, *, anthropic: bool = False) -> str | None:
    """Why `body` is not `{"error": {"message", "type", "param", "code"}}` (or, on the
    Anthropic Messages routes, `{"type": "error", "error": {"type", "message"}}`), or None."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "error body is not JSON"
    if anthropic:
        return anthropic_shape_problem(payload)
    if not isinstance(payload, dict) or set(payload) != {"error"}:
        return "error body is not {'error': ...}"
    error = payload["error"]
    if not isinstance(error, dict) or set(error) != {"message", "type", "param", "code"}:
        return "error object lacks message/type/param/code"
    if not (isinstance(error["message"], str) and error["message"]):
        return "error message is empty"
    if not isinstance(error["type"], str):
        return "error type is not a string"
    if not all(v is None or isinstance(v, str) for v in (error["param"], error["code"])):
        return "error param/code is not a string or null"
    return None


def anthropic_shape_problem(payload: object) -> str | None:
    if not isinstance(payload, dict) or set(payload) != {"type", "error"}:
        return "error body is not {'type': 'error', 'error': ...}"
    error = payload["error"]
    if payload["type"] != "error" or not isinstance(error, dict):
        return "error body's type is not 'error'"
    if set(error) != {"type", "message"} or not all(isinstance(v, str) for v in error.values()):
        return "error object lacks type/message strings"
    return None if error["message"] else "error message is empty"


def is_anthropic(case: Case, body: bytes = b"") -> bool:
    """A request to the Anthropic Messages routes, whose errors take Anthropic's shape. Not
    a request aiohttp's parser refused (a `Content-Encoding` it cannot decode): it drops the
    request line with the error, so the gateway cannot know the route, and answers OpenAI's."""
    if body.startswith(b'{"error":{"message":"malformed HTTP request'):
        return False
    return case.path.startswith("/v1/messages")


def error_label(body: bytes) -> str:
    """An error's type, code and message start, request ids blanked, to group alike errors."""
    try:
        error = json.loads(body)["error"]
        message = REQUEST_ID.sub("req_...", str(error["message"]))[:60]
        return f"{error['type']}/{error.get('code')}: {message}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return repr(body[:60])


def is_own_deadline(case: Case, status: int, body: bytes) -> bool:
    """A 504 the client asked for with a short `timeout` (issue #13 item 4)."""
    if status != 504 or case.client_timeout_s is None:
        return False
    return case.client_timeout_s <= SHORT_DEADLINE_S and b'"timeout_error"' in body


def sse_problem(case: Case, body: bytes) -> str | None:
    for line in body.split(b"\n"):
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        try:
            event = json.loads(line[6:])
        except ValueError:
            return "SSE event is not JSON"
        if is_anthropic(case):
            if isinstance(event, dict) and event.get("type") == "error":
                shape = error_shape_problem(line[6:], anthropic=True)
                if shape:
                    return "SSE error event: " + shape
                if event["error"]["type"] in ANTHROPIC_SERVER_ERROR_TYPES:
                    return "server error event in a 200 stream: " + error_label(line[6:])
            continue
        if isinstance(event, dict) and "error" in event:
            shape = error_shape_problem(line[6:])
            if shape:
                return "SSE error event: " + shape
            # A resumed stream replays the error its request ended with; a 4xx-class one is
            # what the original request was answered, a 5xx-class one is a finding.
            if event["error"]["type"] in SERVER_ERROR_TYPES:
                return "server error event in a 200 stream: " + error_label(line[6:])
    return None


# What the console's pages and static files answer with (issue #21), besides the API's types.
PAGE_TYPES = ("text/html", "text/css", "application/javascript", "text/javascript")


def check(case: Case, status: int, content_type: str, body: bytes, tally: Tally) -> None:
    tally.statuses[status] += 1
    where = describe(case)
    if status >= 500 and not is_own_deadline(case, status, body):
        tally.problem((f"status {status}", case.operation, error_label(body)), where)
    if status >= 400:
        shape = error_shape_problem(body, anthropic=is_anthropic(case, body))
        if shape is not None or content_type != "application/json":
            reason = shape or f"content type {content_type}"
            tally.problem(
                (reason, case.operation, f"status {status}"), where + f" -> {body[:80]!r}"
            )
    elif status == 200 and content_type == "text/event-stream":
        problem = sse_problem(case, body)
        if problem:
            tally.problem((problem, case.operation), where)
    elif status == 200 and content_type == "application/json":
        try:
            json.loads(body)
        except ValueError:
            tally.problem(("200 body is not JSON", case.operation), where)
    elif status != 200 or content_type not in ("text/plain", "application/json", *PAGE_TYPES):
        tally.problem((f"unexpected status {status} ({content_type})", case.operation), where)


class Causes(logging.Handler):
    """The exceptions the service logged while fuzzed, by type and the innermost frame of our
    own code: the causes behind the 5xx answers, deduplicated."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            self.counts[f"ERROR without a traceback: {str(record.msg)[:60]} ({record.name})"] += 1
            return
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "/broker/" in f.filename or "/workers/" in f.filename]
        where = "?"
        if ours or frames:
            frame = (ours or frames)[-1]
            where = f"{frame.filename.rsplit('/', 2)[-2]}/{frame.name}:{frame.lineno}"
        self.counts[f"{type(exc).__name__} at {where} ({record.name})"] += 1


# The loggers a request can make write: the service's, aiohttp's, asyncio's (a task whose
# exception nobody retrieved).
SERVICE_LOGGERS = ("switchboard", "aiohttp", "asyncio")


@contextlib.contextmanager
def causes_logged() -> Iterator[Causes]:
    """Collect what the service logs at ERROR, and keep it out of pytest's capture: a few
    thousand tracebacks would bury the summary, which lists each cause once."""
    causes = Causes()
    loggers = [logging.getLogger(name) for name in SERVICE_LOGGERS]
    for logger in loggers:
        logger.addHandler(causes)
        logger.propagate = False
    try:
        yield causes
    finally:
        for logger in loggers:
            logger.removeHandler(causes)
            logger.propagate = True
