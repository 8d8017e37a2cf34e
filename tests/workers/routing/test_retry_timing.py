"""Retry timing and attempt timeouts: exponential backoff with full jitter, the provider's
Retry-After when it gave one, another deployment at once, and each attempt bounded by its
deployment's timeout within what is left of the request's."""

from __future__ import annotations

import random
import time

import pytest

from workers.deployment import Deployment
from workers.errors import RateLimited, ServiceUnavailable
from workers.providers.base import ChatCall
from workers.retry import BASE_DELAY_S, MAX_DELAY_S, MAX_RETRY_AFTER_S, backoff_s
from workers.routing.attempts import attempt_call as _attempt_call
from workers.routing.attempts import request_deadline as _deadline
from workers.routing.plan import Route
from workers.routing.reliability import retry_delay_s
from workers.settings import RouterSettings
from workers.wire import chat_request_from_dict

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_backoff_doubles_with_full_jitter_up_to_a_ceiling() -> None:
    random.seed(3)
    for attempt in range(8):
        ceiling = min(MAX_DELAY_S, BASE_DELAY_S * 2**attempt)
        delays = [backoff_s(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not fixed
    assert backoff_s(30) <= MAX_DELAY_S


def test_retry_after_wins_and_is_capped() -> None:
    assert backoff_s(0, retry_after_s=2.5) == 2.5
    assert backoff_s(5, retry_after_s=3600) == MAX_RETRY_AFTER_S


def test_the_router_waits_only_when_no_other_deployment_can_take_the_retry() -> None:
    settings = RouterSettings(retry_after=0.25)
    limited = RateLimited("slow down", retry_after_s=4.0)
    assert retry_delay_s(limited, 1, settings, has_alternative=True) == 0.25
    assert retry_delay_s(limited, 1, settings, has_alternative=False) == 4.0
    unavailable = ServiceUnavailable("try later")
    delays = {retry_delay_s(unavailable, 3, settings, has_alternative=False) for _ in range(50)}
    assert min(delays) >= max(0.25, BASE_DELAY_S * 2**2 / 2) and len(delays) > 1


def route(timeout_s: float | None = None, stream_timeout_s: float | None = None) -> Route:
    deployment = Deployment(
        provider="openai",
        model="m",
        name="m",
        timeout_s=timeout_s,
        stream_timeout_s=stream_timeout_s,
    )
    return Route(deployment=deployment)


@pytest.mark.parametrize(
    ("request_timeout", "deployment", "stream", "expected"),
    [
        (None, route(timeout_s=5), False, 5),  # the deployment's own
        (2.0, route(timeout_s=5), False, 2.0),  # what is left of the request's, if shorter
        (10.0, route(timeout_s=5), False, 5),
        (None, route(timeout_s=5, stream_timeout_s=30), True, 30),  # streams: stream_timeout
        (None, route(timeout_s=5, stream_timeout_s=30), False, 5),
        (None, route(), False, None),  # neither: the HTTP client's default applies
    ],
)
def test_each_attempt_is_bounded_by_its_deployment_within_the_request(
    request_timeout: float | None, deployment: Route, stream: bool, expected: float | None
) -> None:
    call = ChatCall(request=chat_request_from_dict(BODY), body=BODY, timeout_s=request_timeout)
    deadline = _deadline(call)
    left_before = None if deadline is None else deadline - time.monotonic()
    attempt = _attempt_call(call, deployment, stream, deadline)
    if expected is None:
        assert attempt.timeout_s is None
    elif expected == request_timeout:  # what is left of the request's: the time left then
        assert deadline is not None and left_before is not None
        assert deadline - time.monotonic() <= attempt.timeout_s <= left_before <= expected
    else:
        assert attempt.timeout_s == expected


def test_a_later_attempt_gets_only_what_is_left_of_the_request() -> None:
    call = ChatCall(request=chat_request_from_dict(BODY), body=BODY, timeout_s=1.0)
    deadline = _deadline(call)
    assert deadline is not None
    deadline -= 0.3  # as if earlier attempts had spent 0.3 s of the request's second
    # Bracketed by the time left just before and just after: however fast the machine.
    left_before = deadline - time.monotonic()
    attempt = _attempt_call(call, route(timeout_s=5), False, deadline)
    left_after = deadline - time.monotonic()
    assert left_after <= attempt.timeout_s <= left_before <= 0.7
