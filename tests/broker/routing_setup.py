"""Configs and clients for the routing tests: model groups of fake deployments with
different speed, price, limits and scripted failures, on the test's namespace."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import yaml

from broker.config.loader import Config, load_config_text
from tests.broker.harness import FAST_CLAIMS

HELLO = [{"role": "user", "content": "hello"}]


def deployment(
    group: str, api_base: str, model: str, *, id: str | None = None, **params: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model_name": group,
        "litellm_params": {
            "model": f"openai/{model}",
            "api_base": api_base,
            "api_key": "sk-fake",
            **params,
        },
    }
    if id is not None:
        entry["model_info"] = {"id": id}
    return entry


def routing_yaml(
    namespace: str,
    models: list[dict[str, Any]],
    *,
    settings: dict[str, Any] | None = None,
    **router: Any,
) -> str:
    document = {
        "model_list": models,
        "router_settings": {"num_retries": 0, **router},
        "switchboard_settings": {"namespace": namespace, **FAST_CLAIMS, **(settings or {})},
    }
    return yaml.safe_dump(document)


def routing_config(namespace: str, models: list[dict[str, Any]], **router: Any) -> Config:
    return load_config_text(routing_yaml(namespace, models, **router))


class Reply:
    def __init__(self, status: int, headers: Any, body: Any) -> None:
        self.status = status
        self.body = body
        self.deployment = headers.get("x-switchboard-deployment")
        self.attempts = headers.get("x-switchboard-attempts")
        self.fallbacks = headers.get("x-switchboard-fallbacks")
        self.worker = headers.get("x-switchboard-worker")


async def ask(session: aiohttp.ClientSession, url: str, model: str) -> Reply:
    body = {"model": model, "messages": HELLO}
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        return Reply(response.status, response.headers, await response.json(content_type=None))


async def ask_many(
    session: aiohttp.ClientSession, url: str, model: str, count: int, *, concurrency: int
) -> list[Reply]:
    """`count` requests, at most `concurrency` at a time (a closed loop of clients)."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Reply:
        async with gate:
            return await ask(session, url, model)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def exchange(session: aiohttp.ClientSession, url: str, model: str, stream: bool) -> None:
    """One request, streamed or not, read to its end whatever it answers."""
    body = {"model": model, "messages": HELLO, "stream": stream}
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        await response.read()


def served(replies: list[Reply]) -> Counter[str]:
    assert all(reply.status == 200 for reply in replies), [
        r.body for r in replies if r.status != 200
    ]
    return Counter(reply.deployment or "" for reply in replies)
