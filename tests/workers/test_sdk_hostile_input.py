"""The SDK refuses what the front door refuses (issue #13, item 5): the same hostile fields,
given as keyword arguments, raise InvalidRequest naming the field, and nothing reaches the
provider."""

from __future__ import annotations

from typing import Any

import pytest

from tests.broker.providers_setup import TARGETS, api_base
from tests.hostile_bodies import CHAT_CASES, EMBEDDING_CASES, Case
from workers.errors import InvalidRequest
from workers.sdk import calls as sdk
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hi"}]
_BY_PROVIDER = {target.provider: target for target in TARGETS}


def _deployment_args(fake: FakeUpstream, provider: str) -> dict[str, Any]:
    target = _BY_PROVIDER[provider]
    return {"api_base": api_base(target, fake.base_url), **target.settings}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("case", CHAT_CASES, ids=[c.id for c in CHAT_CASES])
async def test_a_hostile_argument_to_acompletion_raises_invalid_request(
    fake: FakeUpstream, case: Case, provider: str
) -> None:
    args = {"messages": HELLO, **_deployment_args(fake, provider), case.field: case.value.python}
    with pytest.raises(InvalidRequest) as caught:
        await sdk.acompletion(_BY_PROVIDER[provider].model, **args)
    assert caught.value.param == case.param, caught.value.message
    assert case.param in caught.value.message
    assert fake.request_count == 0


@pytest.mark.parametrize("provider", ["openai", "gemini"])
@pytest.mark.parametrize("case", EMBEDDING_CASES, ids=[c.id for c in EMBEDDING_CASES])
async def test_a_hostile_argument_to_aembedding_raises_invalid_request(
    fake: FakeUpstream, case: Case, provider: str
) -> None:
    target = _BY_PROVIDER[provider]
    assert target.embedding_model is not None
    args = {**_deployment_args(fake, provider), case.field: case.value.python}
    with pytest.raises(InvalidRequest) as caught:
        await sdk.aembedding(target.embedding_model, "hi", **args)
    assert caught.value.param == case.param, caught.value.message
    assert fake.request_count == 0
