"""GET /v1/models/{model} (`client.models.retrieve`) and LiteLLM's /model/info (issue #16)."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest

from broker.config.loader import load_config_text
from tests.broker.harness import service
from tests.broker.routing_setup import deployment, routing_yaml

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
