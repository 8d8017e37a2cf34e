"""LiteLLM's exception names on the SDK (issue #16): `except switchboard.RateLimitError`
catches what `except litellm.RateLimitError` did, with the same attributes."""

from __future__ import annotations

import pytest

import switchboard
from workers.testing.server import FakeUpstream

NAMES = {
    "AuthenticationError": 401,
    "PermissionDeniedError": 403,
    "NotFoundError": 404,
    "BadRequestError": 400,
    "UnprocessableEntityError": 422,
    "RateLimitError": 429,
    "ContextWindowExceededError": 400,
    "ContentPolicyViolationError": 400,
    "Timeout": 408,
    "APIConnectionError": 502,
    "ServiceUnavailableError": 503,
    "InternalServerError": 502,
    "BudgetExceededError": 429,
}


@pytest.mark.parametrize(("name", "status"), NAMES.items())
def test_each_litellm_name_is_exported_with_litellm_attributes(name: str, status: int) -> None:
    cls = getattr(switchboard, name)
    assert name in switchboard.__all__
    error = cls("it failed", provider="openai", model="gpt-4o-mini")
    assert isinstance(error, switchboard.APIError)
    assert (error.status_code, error.message) == (status, "it failed")
    assert (error.llm_provider, error.model) == ("openai", "gpt-4o-mini")


@pytest.mark.parametrize(
    ("directive", "name"),
    [
        ("status=429", "RateLimitError"),
        ("status=401", "AuthenticationError"),
        ("status=context_window", "ContextWindowExceededError"),
        ("status=404", "NotFoundError"),
        ("status=503", "ServiceUnavailableError"),
    ],
)
async def test_sdk_calls_raise_what_the_litellm_names_catch(
    fake: FakeUpstream, directive: str, name: str
) -> None:
    caught = getattr(switchboard, name)
    with pytest.raises(caught) as info:
        await switchboard.acompletion(
            model=f"openai/gpt-4o-mini~{directive}",
            messages=[{"role": "user", "content": "hi"}],
            api_base=fake.base_url + "/v1",
            api_key="sk-test",
            num_retries=0,
        )
    assert info.value.llm_provider == "openai"
    assert info.value.status_code == NAMES[name]
