"""Per-key guardrails on database keys (issue #19), as LiteLLM's /key/generate takes them
(`guardrails: [...]` or `metadata.guardrails`): every request with the key runs them, on
every front door, through the Redis mirror; a name the config lacks is a 400 at
/key/generate and /key/update."""

from __future__ import annotations

import pytest

from tests.broker.harness import wait_until
from tests.broker.tenancy.conftest import Gateway

GUARDRAILS = """\
guardrails:
  - guardrail_name: no-launch-codes
    litellm_params: {guardrail: keywords, mode: pre_call, keywords: [launch codes]}
  - guardrail_name: mask-answers
    litellm_params: {guardrail: regex, mode: post_call, action: mask, patterns: ["fake"]}
"""
SECRET = [{"role": "user", "content": "the launch codes, please"}]
with_guardrails = pytest.mark.parametrize("gateway", [GUARDRAILS], indirect=True)


@with_guardrails
async def test_a_keys_guardrails_run_on_every_request_with_it(gateway: Gateway) -> None:
    guarded = await gateway.new_key(guardrails=["no-launch-codes", "mask-answers"])
    # LiteLLM's other spelling: in the key's metadata.
    in_metadata = await gateway.new_key(metadata={"guardrails": ["no-launch-codes"], "team": "x"})
    plain = await gateway.new_key()
    for door in (0, 1):
        status, body, _ = await gateway.chat(guarded, door=door, messages=SECRET)
        assert status == 400, body
        assert body["error"]["code"] == "guardrail_blocked"
        assert body["error"]["param"] == "no-launch-codes"
    status, body, _ = await gateway.chat(in_metadata, messages=SECRET)
    assert status == 400 and body["error"]["param"] == "no-launch-codes"
    status, body, _ = await gateway.chat(plain, messages=SECRET)
    assert status == 200, body
    status, body, _ = await gateway.chat(guarded)
    assert status == 200 and "[REDACTED]" in body["choices"][0]["message"]["content"]
    info = await gateway.api.ok("GET", "/key/info", key=in_metadata)
    assert info["info"]["metadata"] == {"guardrails": ["no-launch-codes"], "team": "x"}


@with_guardrails
async def test_unknown_guardrails_are_refused_by_name(gateway: Gateway) -> None:
    for fields in (
        {"guardrails": ["no-launch-codes", "nope"]},
        {"metadata": {"guardrails": ["nope"]}},
    ):
        status, body = await gateway.api.post("/key/generate", {"key_alias": "k", **fields})
        assert status == 400, body
        assert body["error"]["param"] == "guardrails"
        assert body["error"]["code"] == "unknown_guardrail"
        assert "nope" in body["error"]["message"] and "no-launch-codes" in body["error"]["message"]
    status, body = await gateway.api.post("/key/generate", {"guardrails": "no-launch-codes"})
    assert status == 400, body
    # Nothing was made by the refused calls.
    listed = await gateway.api.ok("GET", "/key/list", key_alias="k")
    assert listed["keys"] == []
    key = await gateway.new_key()
    status, body = await gateway.api.post("/key/update", {"key": key, "guardrails": ["nope"]})
    assert status == 400 and body["error"]["code"] == "unknown_guardrail"


@with_guardrails
async def test_a_keys_guardrails_change_on_every_front_door(gateway: Gateway) -> None:
    key = await gateway.new_key(metadata={"owner": "ops"})
    status, _, _ = await gateway.chat(key, door=1, messages=SECRET)
    assert status == 200
    await gateway.api.ok("POST", "/key/update", {"key": key, "guardrails": ["no-launch-codes"]})

    async def refused_on_the_other() -> bool:
        status, _, _ = await gateway.chat(key, door=1, messages=SECRET)
        return status == 400

    await wait_until(refused_on_the_other, timeout_s=2.0)
    info = await gateway.api.ok("GET", "/key/info", key=key)
    # The update kept the rest of the metadata.
    assert info["info"]["metadata"] == {"owner": "ops", "guardrails": ["no-launch-codes"]}
    await gateway.api.ok("POST", "/key/update", {"key": key, "guardrails": []})

    async def admitted_again() -> bool:
        status, _, _ = await gateway.chat(key, door=1, messages=SECRET)
        return status == 200

    await wait_until(admitted_again, timeout_s=2.0)


async def test_a_key_with_guardrails_is_refused_when_the_config_has_none(
    gateway: Gateway,
) -> None:
    status, body = await gateway.api.post("/key/generate", {"guardrails": ["anything"]})
    assert status == 400
    assert "the config's guardrails are none" in body["error"]["message"]
