"""The SDK Router routes wildcard groups and tags as the service does (issue #16)."""

from __future__ import annotations

from typing import Any

from broker import Router
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion

MESSAGES = [{"role": "user", "content": "hi"}]


def entry(fake: FakeUpstream, group: str, model: str, **params: Any) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {
            "model": f"openai/{model}",
            "api_base": fake.base_url + "/v1",
            "api_key": "sk-fake",
            **params,
        },
        "model_info": {"id": f"{group}:{model}"},
    }


async def test_a_wildcard_group_serves_the_name_it_matches(fake: FakeUpstream) -> None:
    router = Router(model_list=[entry(fake, "*", "*")])
    reply = await router.acompletion(model="gpt-4.1-mini", messages=MESSAGES)
    await router.aclose()
    assert isinstance(reply, ChatCompletion)
    assert fake.state.requests[0].json["model"] == "gpt-4.1-mini"


async def test_tags_keep_requests_on_their_deployments(fake: FakeUpstream) -> None:
    router = Router(
        model_list=[
            entry(fake, "g", "team-a", tags=["teamA"]),
            entry(fake, "g", "team-b", tags=["teamB"]),
        ],
        enable_tag_filtering=True,
    )
    for _ in range(8):
        reply = await router.acompletion(model="g", messages=MESSAGES, tags=["teamB"])
        assert isinstance(reply, ChatCompletion)
        assert reply.hidden_params["deployment"] == "g:team-b"
        meta = await router.acompletion(model="g", messages=MESSAGES, metadata={"tags": ["teamA"]})
        assert isinstance(meta, ChatCompletion) and meta.hidden_params["deployment"] == "g:team-a"
    await router.aclose()
    assert all("tags" not in r.json and "metadata" not in r.json for r in fake.state.requests)
