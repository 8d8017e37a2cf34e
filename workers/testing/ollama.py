"""Ollama's native API as a fake (`ollama/` provider, issue #16): `/api/chat`,
`/api/generate` (whole, or NDJSON streams, Ollama's default), `/api/embed` and `/api/tags`,
with the model-name scenario directives (`~tools=1`, `~echo`, `~status=503`, ...).

Errors are Ollama's `{"error": "..."}` with the status; a failure mid-stream is a final
`{"error": ...}` line. The official `ollama` Python client parses all of it
(tests/workers/testing/test_ollama_fake.py).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import orjson
from aiohttp import web

from workers.testing.embedding import embedding_vector
from workers.testing.reply import ReplyPlan, plan_reply
from workers.testing.scenario import Scenario, ScenarioError, parse_scenario
from workers.testing.state import ClientWatch, FakeState, record_request
from workers.testing.streaming import send_events
from workers.testing.tokens import count_prompt_tokens, count_tokens

NDJSON = "application/x-ndjson"
EMBEDDING_SIZE = 768


class _Message(msgspec.Struct):
    role: str
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None


class _ChatRequest(msgspec.Struct):
    model: str
    messages: list[_Message] = []
    prompt: str | None = None
    stream: bool = True
    tools: list[dict[str, Any]] | None = None
    options: dict[str, Any] | None = None
    format: Any = None


class _EmbedRequest(msgspec.Struct):
    model: str
    input: str | list[str]


_decode_chat = msgspec.json.Decoder(_ChatRequest).decode
_decode_embed = msgspec.json.Decoder(_EmbedRequest).decode


def routes(state: FakeState) -> list[web.RouteDef]:
    async def chat(request: web.Request) -> web.StreamResponse:
        return await _answer(request, state, await record_request(request, state), "chat")

    async def generate(request: web.Request) -> web.StreamResponse:
        return await _answer(request, state, await record_request(request, state), "generate")

    async def embed(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        try:
            asked = _decode_embed(body)
        except msgspec.DecodeError as exc:
            return _error(400, str(exc))
        inputs = [asked.input] if isinstance(asked.input, str) else asked.input
        vectors = [list(embedding_vector(text, EMBEDDING_SIZE)) for text in inputs]
        tokens = count_prompt_tokens(inputs)
        return _json({"model": asked.model, "embeddings": vectors, "prompt_eval_count": tokens})

    async def tags(request: web.Request) -> web.StreamResponse:
        await record_request(request, state)
        return _json({"models": [{"name": "llama3.1:latest", "model": "llama3.1:latest"}]})

    return [
        web.post("/api/chat", chat),
        web.post("/api/generate", generate),
        web.post("/api/embed", embed),
        web.get("/api/tags", tags),
    ]


async def _answer(
    request: web.Request, state: FakeState, body: bytes, kind: str
) -> web.StreamResponse:
    try:
        asked = _decode_chat(body)
        scenario = parse_scenario(asked.model)
    except (msgspec.DecodeError, ScenarioError) as exc:
        return _error(400, str(exc))
    if scenario.status is not None and scenario.fails(state.count_model(asked.model)):
        failed = _error(scenario.status, f"fake failure {scenario.status}")
        if scenario.retry_after_s is not None:
            failed.headers["Retry-After"] = f"{scenario.retry_after_s:g}"
        return failed
    texts = [m.content for m in asked.messages] if kind == "chat" else [asked.prompt or ""]
    tool_names = tuple(
        str(t.get("function", {}).get("name", "")) for t in asked.tools or () if isinstance(t, dict)
    )
    plan = plan_reply(
        scenario,
        prompt_tokens=count_prompt_tokens(texts),
        last_user_text=_last_user_text(asked, kind),
        tool_names=tool_names,
    )
    head = {"model": asked.model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if not asked.stream:
        return _json({**head, **_body(kind, plan.text or "", plan), **_done(plan, scenario)})
    lines = [_line({**head, **_body(kind, piece, None), "done": False}) for piece in plan.pieces]
    if plan.tool_calls:
        lines.append(_line({**head, **_body(kind, "", plan), "done": False}))
    if scenario.stream_error_after is not None:
        lines = lines[: scenario.stream_error_after]
        lines.append(_line({"error": "fake failure mid-stream"}))
    else:
        lines.append(_line({**head, **_body(kind, "", None), **_done(plan, scenario)}))
    with ClientWatch(state, request.path, asked.model) as watch:
        return await send_events(
            request,
            watch,
            lines,
            headers={"Content-Type": NDJSON},
            chunk_delay_s=scenario.chunk_delay_s or 0.0,
        )


def _last_user_text(asked: _ChatRequest, kind: str) -> str:
    if kind == "generate":
        return asked.prompt or ""
    users = [m.content for m in asked.messages if m.role == "user"]
    return users[-1] if users else ""


def _body(kind: str, text: str, plan: ReplyPlan | None) -> dict[str, Any]:
    if kind == "generate":
        return {"response": text}
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if plan is not None and plan.tool_calls:
        message["tool_calls"] = [
            {"function": {"name": call.name, "arguments": orjson.loads(call.arguments)}}
            for call in plan.tool_calls
        ]
    return {"message": message}


def _done(plan: ReplyPlan, scenario: Scenario) -> dict[str, Any]:
    return {
        "done": True,
        "done_reason": "length" if scenario.length else "stop",
        "total_duration": 1000,
        "prompt_eval_count": plan.prompt_tokens,
        "eval_count": plan.completion_tokens or count_tokens(plan.text or ""),
    }


def _line(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload) + b"\n"


def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)
