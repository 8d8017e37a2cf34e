"""GET /v1/models/{model} (`client.models.retrieve`) and LiteLLM's /model/info (issue #16)."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest

from broker.config.loader import load_config_text
from tests.broker.harness import service
from tests.broker.routing_setup import deployment, routing_yaml
from workers import pricing

MASTER = "sk-master-models"
TEAM = "sk-team-models"


def models_config(namespace: str) -> str:
    base = "http://user:pw@127.0.0.1:9/v1?token=secret"
    models: list[dict[str, Any]] = [
        deployment("gpt", base, "gpt-4o-mini", id="gpt-eu", tags=["teamA"], rpm=10),
        deployment("other", base, "gpt-4o", id="other-1"),
        {
            "model_name": "anthropic/*",
            "litellm_params": {"model": "anthropic/*", "api_key": "sk-ant-secret"},
        },
    ]
    models[0]["model_info"].update(version=2, owner="search-team")
    return routing_yaml(namespace, models) + f"general_settings:\n  master_key: {MASTER}\n"


@pytest.fixture
def config_text(namespace: str) -> str:
    text = models_config(namespace)
    return text.replace(
        "switchboard_settings:\n",
        f"switchboard_settings:\n  api_keys:\n  - {{alias: team, key: {TEAM}, models: [gpt]}}\n",
    )


async def test_the_openai_sdk_retrieves_served_models_and_gets_404_for_others(
    config_text: str,
) -> None:
    config = load_config_text(config_text)
    async with service(config, workers=0) as (doors, _):
        client = openai.AsyncOpenAI(base_url=doors[0].url + "/v1", api_key=MASTER)
        assert (await client.models.retrieve("gpt")).id == "gpt"
        wildcard = await client.models.retrieve("anthropic/claude-haiku-4-5")
        assert wildcard.id == "anthropic/claude-haiku-4-5"
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("nope")
        team = openai.AsyncOpenAI(base_url=doors[0].url + "/v1", api_key=TEAM)
        with pytest.raises(openai.PermissionDeniedError):
            await team.models.retrieve("other")
        await client.close()
        await team.close()
    assert missing.value.code == "model_not_found"


async def test_model_info_lists_deployments_as_litellm_does_without_secrets(
    config_text: str,
) -> None:
    config = load_config_text(config_text)
    async with service(config, workers=0) as (doors, _), aiohttp.ClientSession() as session:
        url = doors[0].url
        headers = {"Authorization": f"Bearer {MASTER}"}
        async with session.get(url + "/model/info", headers=headers) as response:
            assert response.status == 200
            text = await response.text()
            data = (await response.json())["data"]
        async with session.get(
            url + "/v1/model/info", params={"litellm_model_id": "gpt-eu"}, headers=headers
        ) as response:
            one = (await response.json())["data"]
        team_headers = {"Authorization": f"Bearer {TEAM}"}
        async with session.get(url + "/v1/model/info", headers=team_headers) as response:
            team = (await response.json())["data"]
    assert [d["model_name"] for d in data] == ["gpt", "other", "anthropic/*"]
    first = data[0]
    assert first["litellm_params"] == {
        "model": "openai/gpt-4o-mini",
        "api_base": "http://127.0.0.1:9/v1",
        "rpm": 10,
        "tags": ["teamA"],
    }
    assert first["model_info"]["id"] == "gpt-eu"
    assert first["model_info"]["version"] == 2 and first["model_info"]["owner"] == "search-team"
    assert [d["model_info"]["id"] for d in one] == ["gpt-eu"]
    assert [d["model_name"] for d in team] == ["gpt"]
    for secret in ("sk-fake", "sk-ant-secret", "pw", "token=secret", MASTER):
        assert secret not in text


async def test_model_info_takes_prices_and_limits_the_config_omits_from_the_price_table(
    namespace: str,
) -> None:
    """Issue #21's Models page: the config's figures where it gives them (litellm_params'
    price winning over model_info's, as in billing), the table's for a known model
    otherwise, each named under `from_price_table`; an unknown model gets none."""
    base = "http://127.0.0.1:9/v1"
    models: list[dict[str, Any]] = [
        deployment("known", base, "gpt-4o-mini", id="known"),
        deployment("priced", base, "gpt-4o", id="priced", input_cost_per_token=0.000001),
        deployment("unknown", base, "house-model-7", id="unknown"),
    ]
    models[1]["model_info"].update(output_cost_per_token=0.000009, max_input_tokens=1000)
    text = routing_yaml(namespace, models) + f"general_settings:\n  master_key: {MASTER}\n"
    table = {name: pricing.lookup_price("openai", name) for name in ("gpt-4o-mini", "gpt-4o")}
    async with service(load_config_text(text), workers=0) as (doors, _):
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                doors[0].url + "/model/info", headers={"Authorization": f"Bearer {MASTER}"}
            ) as response,
        ):
            info = {d["model_info"]["id"]: d["model_info"] for d in (await response.json())["data"]}
    known, mini = info["known"], table["gpt-4o-mini"]
    assert mini is not None and mini.max_input_tokens is not None
    assert known["input_cost_per_token"] == mini.input_cost_per_token
    assert known["output_cost_per_token"] == mini.output_cost_per_token
    assert known["max_input_tokens"] == mini.max_input_tokens
    assert known["from_price_table"] == [
        "input_cost_per_token",
        "output_cost_per_token",
        "max_input_tokens",
        "max_output_tokens",
    ]
    priced, four = info["priced"], table["gpt-4o"]
    assert four is not None
    assert priced["input_cost_per_token"] == 0.000001  # litellm_params', not the table's
    assert priced["output_cost_per_token"] == 0.000009 and priced["max_input_tokens"] == 1000
    assert priced["max_output_tokens"] == four.max_output_tokens
    assert priced["from_price_table"] == ["max_output_tokens"]
    assert "from_price_table" not in info["unknown"]
    assert info["unknown"].get("input_cost_per_token") is None
