"""Gemini's `models/{model}:countTokens` as a fake: the request's input counted the fakes'
way (four characters a token, workers/testing/tokens.py), so a test knows the number the
provider would say. The body is `{"contents": [...]}` or `{"generateContentRequest":
{"model": "models/<model>", "contents": [...], "systemInstruction", "tools", ...}}`, never
both; the answer `{"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT",
"tokenCount": n}]}`, as the Gemini API writes it."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from workers.testing import gemini_errors as errors
from workers.testing.state import FakeState
from workers.testing.tokens import count_prompt_tokens

JSONObject = dict[str, Any]


def _texts(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [
        p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)
    ]


def input_texts(request: JSONObject) -> list[str]:
    """What the model would read: the system instruction, every content's text, the tools."""
    texts = _texts(request.get("systemInstruction"))
    for content in request.get("contents") or ():
        texts += _texts(content)
    if request.get("tools"):
        texts.append(orjson.dumps(request["tools"]).decode())
    return texts


def _problem(body: Any, model: str) -> str | None:
    if not isinstance(body, dict):
        return "Invalid JSON payload received."
    whole = body.get("generateContentRequest")
    if whole is not None and "contents" in body:
        return "* CountTokensRequest: contents and generateContentRequest are mutually exclusive"
    request = whole if whole is not None else body
    if not isinstance(request, dict) or not request.get("contents"):
        return "* CountTokensRequest.contents: contents is not specified\n"
    if whole is not None and request.get("model") != f"models/{model}":
        return f"* GenerateContentRequest.model: must be models/{model}\n"
    return None


async def count_tokens(
    request: web.Request, state: FakeState, model: str, body: bytes
) -> web.StreamResponse:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    problem = _problem(parsed, model)
    if problem is not None:
        return errors.invalid_argument(problem)
    counted = parsed.get("generateContentRequest") or parsed
    total = count_prompt_tokens(input_texts(counted))
    details = [{"modality": "TEXT", "tokenCount": total}]
    answer = {"totalTokens": total, "promptTokensDetails": details}
    return web.Response(body=errors.pretty(answer), content_type="application/json")
