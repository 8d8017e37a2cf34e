"""Conversation affinity: in a group of several deployments, every turn of one Messages
conversation (its caller, system prompt and first message) and of one Responses chain goes
to the same deployment, so a provider's prompt cache keeps hitting and encrypted reasoning
returns where it was made; different conversations still spread over the group."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from broker.config.loader import load_config_text
from tests.broker.harness import service
from tests.broker.ingress.setup import TIMEOUT_S, TRANSLATED
from tests.broker.providers_setup import AWS_CONFIG_ENV, TARGETS, Group, config_text
from workers.redis_streams import Keys

OPENAI = next(t for t in TARGETS if t.provider == "openai")
# On the translation (`responses_api: chat`): the chains under test are the gateway's own.
PAIR = [
    Group("pair", OPENAI._replace(model="openai/gpt-4o-mini"), "", TRANSLATED),
    Group("pair", OPENAI._replace(model="openai/gpt-4o"), "", TRANSLATED),
]
CONVERSATIONS = 12
LABELS = ("pair[0]", "pair[1]")  # the deployments as their group names them


@contextlib.asynccontextmanager
async def pair(fake, namespace) -> AsyncIterator[str]:
    config = load_config_text(config_text(fake.base_url, namespace, PAIR), AWS_CONFIG_ENV)
    async with asyncio.timeout(TIMEOUT_S), service(config) as ([door], _):
        yield door.url


async def served_by(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[str, Any]:
    async with session.post(url, json=body) as reply:
        assert reply.status == 200, await reply.text()
        return reply.headers["x-switchboard-deployment"], await reply.json()


async def test_each_messages_conversation_stays_on_one_deployment(fake, namespace):
    async with pair(fake, namespace) as url, aiohttp.ClientSession() as session:
        chosen: set[str] = set()
        for n in range(CONVERSATIONS):
            history: list[Any] = [{"role": "user", "content": f"conversation {n}"}]
            served: set[str] = set()
            for turn in range(3):
                body = {"model": "pair", "max_tokens": 64, "system": "sys", "messages": history}
                deployment, message = await served_by(session, url + "/v1/messages", body)
                served.add(deployment)
                history += [
                    {"role": "assistant", "content": message["content"]},
                    {"role": "user", "content": f"turn {turn}"},
                ]
            assert len(served) == 1, served
            chosen |= served
        assert len(chosen) == 2  # conversations spread over both


async def test_each_responses_chain_stays_on_one_deployment(fake, namespace):
    async with pair(fake, namespace) as url, aiohttp.ClientSession() as session:
        chosen: set[str] = set()
        for n in range(CONVERSATIONS):
            served: set[str] = set()
            previous = None
            for turn in range(3):
                body: dict[str, Any] = {"model": "pair", "input": f"conversation {n} turn {turn}"}
                if previous:
                    body["previous_response_id"] = previous
                deployment, response = await served_by(session, url + "/v1/responses", body)
                served.add(deployment)
                previous = response["id"]
            assert len(served) == 1, served
            chosen |= served
        assert len(chosen) == 2


async def test_a_follow_up_goes_back_to_the_deployment_that_served_its_parent(
    fake, namespace, redis
):
    """Whatever the conversation's hash would pick: the stored deployment wins while it is
    eligible (its encrypted reasoning is its own)."""
    async with pair(fake, namespace) as url, aiohttp.ClientSession() as session:
        first, response = await served_by(
            session, url + "/v1/responses", {"model": "pair", "input": "hello"}
        )
        other = next(label for label in LABELS if label != first)
        # As if the other deployment had served it.
        await redis.hset(Keys(namespace).response(response["id"]), "deployment", other)
        body = {"model": "pair", "input": "again", "previous_response_id": response["id"]}
        second, _ = await served_by(session, url + "/v1/responses", body)
    assert second == other
