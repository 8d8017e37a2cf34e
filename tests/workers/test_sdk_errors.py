"""Every error class, produced through the SDK from the fake upstream's scripted failures,
with the OpenAI error body it renders as."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from workers import errors
from workers.sdk import calls as sdk
from workers.sdk.stream import ChatStream
from workers.testing.server import FakeUpstream

KEY = "sk-test"
HELLO = [{"role": "user", "content": "hi"}]

CASES = [
    # (provider, model directives, error class, status, OpenAI type, code)
    ("openai", "status=400", errors.InvalidRequest, 400, "invalid_request_error", None),
    (
        "openai",
        "status=context_window",
        errors.ContextWindowExceeded,
        400,
        "invalid_request_error",
        "context_length_exceeded",
    ),
    (
        "azure",
        "status=content_filter",
        errors.ContentPolicyViolation,
        400,
        "invalid_request_error",
        "content_policy_violation",
    ),
    (
        "openai",
        "status=401",
        errors.AuthenticationFailed,
        401,
        "authentication_error",
        "invalid_api_key",
    ),
    ("openai", "status=403", errors.PermissionDenied, 403, "permission_error", None),
    ("openai", "status=404", errors.NotFound, 404, "not_found_error", None),
    (
        "openai",
        "status=429~retry_after=3",
        errors.RateLimited,
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    ),
    (
        "azure",
        "status=429~retry_after=3",
        errors.RateLimited,
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    ),
    ("openai", "status=500", errors.ProviderError, 500, "api_error", "provider_error"),
    (
        "openai",
        "status=503",
        errors.ServiceUnavailable,
        503,
        "service_unavailable_error",
        "service_unavailable",
    ),
]


def _target(fake: FakeUpstream, provider: str) -> dict[str, Any]:
    if provider == "azure":
        return {"api_base": fake.base_url, "api_version": "2024-10-21"}
    return {"api_base": fake.base_url + "/v1"}


@pytest.mark.parametrize(("provider", "directives", "cls", "status", "type_", "code"), CASES)
async def test_upstream_status_maps_to_error_class_and_body(
    fake: FakeUpstream,
    provider: str,
    directives: str,
    cls: type[errors.SwitchboardError],
    status: int,
    type_: str,
    code: str | None,
) -> None:
    with pytest.raises(errors.SwitchboardError) as caught:
        await sdk.acompletion(
            f"{provider}/gpt-4o~{directives}", HELLO, api_key=KEY, **_target(fake, provider)
        )
    error = caught.value
    assert type(error) is cls
    assert error.http_status == status
    assert error.provider == provider and error.upstream_status is not None
    body = error.to_body().error
    assert body.type == type_ and body.message
    if code is not None:
        assert body.code == code
    if cls is errors.RateLimited:
        assert error.retry_after_s == pytest.approx(3)
    # Errors show where they came from, never a credential.
    assert KEY not in str(error) and KEY not in body.message


async def test_a_hanging_upstream_times_out(fake: FakeUpstream) -> None:
    with pytest.raises(errors.RequestTimeout) as caught:
        await sdk.acompletion(
            "openai/gpt-4o~hang", HELLO, timeout=0.3, api_key=KEY, api_base=fake.base_url + "/v1"
        )
    assert caught.value.http_status == 408
    assert caught.value.to_body().error.type == "timeout_error"
    await fake.wait_for_disconnects(1)


async def test_a_slow_first_token_times_out_a_stream(fake: FakeUpstream) -> None:
    with pytest.raises(errors.RequestTimeout):
        await sdk.acompletion(
            "openai/gpt-4o~ttft=5",
            HELLO,
            stream=True,
            timeout=0.3,
            api_key=KEY,
            api_base=fake.base_url + "/v1",
        )


async def test_an_unreachable_host_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        with pytest.raises(errors.APIConnectionError) as caught:
            await sdk.acompletion(
                "openai/gpt-4o", HELLO, api_key=KEY, api_base=f"http://127.0.0.1:{port}/v1"
            )
    assert caught.value.http_status == 502
    assert caught.value.to_body().error.code == "connection_error"


async def test_an_error_event_mid_stream_raises_after_the_chunks_before_it(
    fake: FakeUpstream,
) -> None:
    stream = await sdk.acompletion(
        "openai/gpt-4o~stream_error_after=2~chunk_delay=0.01",
        HELLO,
        stream=True,
        api_key=KEY,
        api_base=fake.base_url + "/v1",
    )
    assert isinstance(stream, ChatStream)
    received = []
    with pytest.raises(errors.ProviderError) as caught:
        async for chunk in stream:
            received.append(chunk)
    assert received, "chunks before the error reach the caller"
    assert "server had an error" in caught.value.message


async def test_a_mid_stream_disconnect_raises(fake: FakeUpstream) -> None:
    stream = await sdk.acompletion(
        "openai/gpt-4o~disconnect_after=2~chunk_delay=0.01",
        HELLO,
        stream=True,
        api_key=KEY,
        api_base=fake.base_url + "/v1",
    )
    assert isinstance(stream, ChatStream)
    with pytest.raises(errors.ProviderError):
        async for _ in stream:
            pass


async def test_closing_a_stream_early_closes_the_upstream_connection(fake: FakeUpstream) -> None:
    stream = await sdk.acompletion(
        "openai/gpt-4o~chunks=50~chunk_delay=0.05",
        HELLO,
        stream=True,
        api_key=KEY,
        api_base=fake.base_url + "/v1",
    )
    assert isinstance(stream, ChatStream)
    await anext(stream)
    await stream.aclose()
    disconnects = await fake.wait_for_disconnects(1)
    assert disconnects


async def test_a_quota_429_is_not_retryable() -> None:
    error = errors.error_for_status(429, "You exceeded your quota", code="insufficient_quota")
    assert isinstance(error, errors.QuotaExceeded) and not error.retryable
    assert error.to_body().error.code == "insufficient_quota"
