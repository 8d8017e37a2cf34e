"""The refusal mechanics every adapter shares (`Adapter.refuser` and friends)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from workers.errors import UnsupportedParams
from workers.http import HttpClient
from workers.providers import create_adapter, make_deployment
from workers.providers.base import ChatCall
from workers.wire import chat_request_from_dict

TABLE = {"logit_bias": "no logit bias here", "seed": "no seed here"}


def call(body: dict[str, Any], *, drop_params: bool = False) -> ChatCall:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    return ChatCall(request=chat_request_from_dict(body), body=body, drop_params=drop_params)


@pytest.fixture
async def adapter():
    http = HttpClient()
    deployment = make_deployment("groq/llama-3.1-8b-instant", {}, api_key="k")
    yield create_adapter(deployment, http)
    await http.close()


async def test_refuse_set_names_the_first_set_parameter_and_the_provider(adapter):
    with pytest.raises(UnsupportedParams) as caught:
        adapter.refuse_set(call({"seed": 1, "logit_bias": {"1": 2}}), {"seed": 1}, TABLE)
    assert caught.value.param == "seed"
    assert caught.value.provider == "groq" and caught.value.http_status == 400
    assert "`seed`: no seed here" in caught.value.message and "drop_params" in caught.value.message


async def test_refuse_set_ignores_unset_and_null_parameters(adapter):
    assert adapter.refuse_set(call({}), {"seed": None, "top_p": 1}, TABLE) == []


async def test_with_drop_params_the_names_come_back_to_drop_and_are_logged(adapter, caplog):
    values = {"logit_bias": {"1": 2}, "seed": 3}
    with caplog.at_level(logging.DEBUG, logger="switchboard.params"):
        dropped = adapter.refuse_set(call(values, drop_params=True), values, TABLE)
    assert dropped == ["logit_bias", "seed"]
    assert [r.getMessage() for r in caplog.records] == [
        "dropping parameter logit_bias unsupported by groq: no logit bias here",
        "dropping parameter seed unsupported by groq: no seed here",
    ]


async def test_unknown_fields_are_refused_by_name(adapter):
    with pytest.raises(UnsupportedParams) as caught:
        adapter.refuse_unknown(call({}), ["frobnicate"])
    assert caught.value.param == "frobnicate"
    adapter.refuse_unknown(call({}, drop_params=True), ["frobnicate"])  # dropped: no error
