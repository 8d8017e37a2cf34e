"""What `switchboard up --demo` adds once it is ready, so a newcomer's console opens with data
(issue #21): a database key `demo-key` with a small budget, made through the public
/key/generate with the demo's master key and kept in the data directory (0600) beside
`demo-master-key`, and a few requests from it (streamed and not, on two of the demo's model
groups) so Spend, the request inspector and the Live page have something to show.

Run again on the same data directory it makes no second key: the file's key is used, and a
`demo-key` whose file was lost is regenerated (aliases are unique) rather than duplicated.
Everything goes through the HTTP API a script would use; nothing here touches the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger("switchboard.demo")

DEMO_KEY_ALIAS = "demo-key"
DEMO_KEY_FILE = "demo-key"
DEMO_KEY_BUDGET_USD = 1.0
# The demo's first traffic: (model group, stream?) pairs, sent together.
DEMO_TRAFFIC = (
    ("demo-fast", False),
    ("demo-fast", False),
    ("demo-fast", True),
    ("demo", False),
    ("demo", True),
    ("demo", True),
)
PROMPT = "Say hello to a newcomer to Switchboard in one sentence."
# Generous: the workers may still be starting when the front door is ready.
REQUEST_TIMEOUT_S = 60.0


class SeedFailed(Exception):
    """The API refused to make the demo key (its answer, never a key, in the message)."""


def loopback_base(host: str, port: int) -> str:
    """The URL this host reaches a listener bound to `host` on."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def seed_demo(base_url: str, master_key: str, directory: Path) -> tuple[Path, int]:
    """Make (or find) the demo key and send its first traffic: the key's file, and how many
    of the requests were answered."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(base_url, timeout=timeout) as http:
        key, path = await demo_key(http, master_key, directory)
        answered = await send_traffic(http, key)
    return path, answered


async def demo_key(
    http: aiohttp.ClientSession, master_key: str, directory: Path
) -> tuple[str, Path]:
    """The key in the data directory's `demo-key` file, made through the API first when
    there is none."""
    path = directory / DEMO_KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key, path
    admin = {"Authorization": f"Bearer {master_key}"}
    body = {
        "key_alias": DEMO_KEY_ALIAS,
        "max_budget": DEMO_KEY_BUDGET_USD,
        "metadata": {"made_by": "switchboard up --demo"},
    }
    status, answer = await _post(http, "/key/generate", body, admin)
    if status == 400 and _alias_taken(answer):
        # The key exists but its file is gone: a new secret for the same key, not a twin.
        status, answer = await _post(http, "/key/regenerate", {"key": DEMO_KEY_ALIAS}, admin)
    if status != 200 or not isinstance(answer.get("key"), str):
        raise SeedFailed(f"the API did not make the demo key ({status}): {_message(answer)}")
    return _keep(path, answer["key"]), path


def _keep(path: Path, key: str) -> str:
    """Write `key` to `path` (0600, only if no file is there yet); the key the file holds."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another `up --demo` in this directory got there first
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    return key


async def send_traffic(http: aiohttp.ClientSession, key: str) -> int:
    """The demo's first requests, as `key`; how many were answered (a refusal, such as a
    spent budget on a later run, is logged and counted out, never raised)."""
    caller = {"Authorization": f"Bearer {key}"}
    results = await asyncio.gather(
        *(_chat(http, caller, model, stream) for model, stream in DEMO_TRAFFIC),
        return_exceptions=True,
    )
    answered = 0
    for (model, _), result in zip(DEMO_TRAFFIC, results, strict=True):
        if result is True:
            answered += 1
        else:
            log.warning("a demo request to %s was not answered: %s", model, result)
    return answered


async def _chat(
    http: aiohttp.ClientSession, caller: dict[str, str], model: str, stream: bool
) -> bool | str:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    async with http.post("/v1/chat/completions", json=body, headers=caller) as response:
        if response.status != 200:
            answer = await response.json(content_type=None)
            return f"{response.status} {_message(answer)}"
        await response.read()  # the whole answer (every SSE event of a stream)
        return True


async def _post(
    http: aiohttp.ClientSession, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with http.post(path, json=body, headers=headers) as response:
        answer = await response.json(content_type=None)
        return response.status, answer if isinstance(answer, dict) else {}


def _alias_taken(answer: dict[str, Any]) -> bool:
    error = answer.get("error")
    return isinstance(error, dict) and error.get("param") == "key_alias"


def _message(answer: dict[str, Any]) -> str:
    error = answer.get("error")
    return str(error.get("message")) if isinstance(error, dict) else "no error message"
