"""`error_for_status`: the one mapping from an upstream status and message to the error tree,
as every adapter reaches it, checked through the official openai client's view (status)."""

from __future__ import annotations

import pytest

from workers import errors
from workers.errors import error_for_status, says_context_window_exceeded
from workers.sdk import calls as sdk
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("status", "message", "code", "expected", "http_status"),
    [
        (413, "Request Entity Too Large", None, errors.RequestTooLarge, 413),
        (402, "Payment Required: add credit", None, errors.QuotaExceeded, 429),
        (400, "bad value", "invalid_value", errors.InvalidRequest, 400),
        (422, "unprocessable", None, errors.UnprocessableEntity, 422),
        (400, "filtered", "content_filter", errors.ContentPolicyViolation, 400),
        (429, "slow down", None, errors.RateLimited, 429),
        (429, "You exceeded your quota", "insufficient_quota", errors.QuotaExceeded, 429),
        (529, "Overloaded", None, errors.ServiceUnavailable, 503),
        (504, "gateway timeout", None, errors.ProviderError, 502),
        (418, "teapot", None, errors.InvalidRequest, 418),
    ],
)
def test_status_maps_to_the_most_specific_error(status, message, code, expected, http_status):
    error = error_for_status(status, message, code=code, provider="p", model="m")
    assert type(error) is expected
    assert error.http_status == http_status
    assert error.upstream_status == status


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "This model's maximum context length is 128000 tokens. However, you requested 130k"),
        (400, "prompt is too long: 208310 tokens > 200000 maximum"),
        (400, "input length and `max_tokens` exceed context limit: 178959 + 64000 > 200000"),
        (400, "The input token count (1048577) exceeds the maximum number of tokens allowed"),
        (400, "Input is too long for requested model."),
        (400, "This model's maximum prompt length is 131072 but the request contains 200000"),
        (413, "Prompt is too long for this model's context window"),
        (422, "too many tokens in the prompt"),
    ],
)
def test_context_overflow_in_words_is_context_window_exceeded(status, message):
    error = error_for_status(status, message, provider="p", model="m")
    assert type(error) is errors.ContextWindowExceeded
    assert error.code == "context_length_exceeded"
    assert error.param == "messages"
    assert error.http_status == 400  # a BadRequestError in the openai client


def test_context_overflow_by_code_alone_is_context_window_exceeded():
    error = error_for_status(400, "Please reduce the length", code="context_length_exceeded")
    assert type(error) is errors.ContextWindowExceeded
    assert says_context_window_exceeded("anything", "CONTEXT_LENGTH_EXCEEDED")


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500])
def test_context_words_do_not_override_other_statuses(status):
    error = error_for_status(status, "context window exceeded", provider="p", model="m")
    assert not isinstance(error, errors.ContextWindowExceeded)


@pytest.mark.parametrize(
    ("directive", "expected", "http_status"),
    [
        ("status=413", errors.RequestTooLarge, 413),
        ("status=402", errors.QuotaExceeded, 429),
        ("status=context_window", errors.ContextWindowExceeded, 400),
    ],
)
async def test_openai_family_upstream_errors_reach_the_sdk_mapped(
    fake: FakeUpstream, directive, expected, http_status
):
    with pytest.raises(expected) as caught:
        await sdk.acompletion(
            f"groq/llama-3.1-8b-instant~{directive}",
            HELLO,
            api_base=fake.base_url + "/v1",
            api_key="gsk-fake",
        )
    assert caught.value.http_status == http_status
    assert caught.value.provider == "groq"
