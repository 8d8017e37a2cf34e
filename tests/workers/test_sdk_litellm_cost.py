"""Cost where LiteLLM users read it (issue #16): `response._hidden_params["response_cost"]`,
`completion_cost(completion_response=...)` and `cost_per_token(model=..., ...)`."""

from __future__ import annotations

import pytest

import switchboard
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion


async def test_response_cost_is_in_hidden_params_and_completion_cost_agrees(
    fake: FakeUpstream,
) -> None:
    response = await switchboard.acompletion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        api_base=fake.base_url + "/v1",
        api_key="sk-test",
    )
    assert isinstance(response, ChatCompletion)
    cost = response._hidden_params["response_cost"]
    assert cost is not None and cost > 0
    assert response._hidden_params["custom_llm_provider"] == "openai"
    assert switchboard.completion_cost(completion_response=response) == cost


def test_cost_per_token_prices_counts_with_litellm_argument_names() -> None:
    prompt, completion = switchboard.cost_per_token(
        model="gpt-4o-mini", prompt_tokens=1_000_000, completion_tokens=1_000_000
    )
    assert prompt == pytest.approx(0.15) and completion == pytest.approx(0.60)
    with pytest.raises(switchboard.NotFoundError):
        switchboard.cost_per_token(model="no-such-model", prompt_tokens=1)
