"""OpenAI's `POST /v1/moderations` as a fake (the `openai_moderation` guardrail's upstream,
issue #19): one result per input, in the shape of openai-python's
`ModerationCreateResponse` (`flagged`, `categories`, `category_scores`,
`category_applied_input_types`). A text is flagged for a category when it contains one of
that category's trigger words below, so a test knows what each input gets."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from workers.testing import openai_errors as errors
from workers.testing.responses import json_response
from workers.testing.state import FakeState

# Every category OpenAI reports, and the words that flag it here.
TRIGGERS: dict[str, tuple[str, ...]] = {
    "harassment": ("idiot",),
    "harassment/threatening": ("or else",),
    "hate": ("hateful",),
    "hate/threatening": (),
    "illicit": ("counterfeit",),
    "illicit/violent": (),
    "self-harm": ("hurt myself",),
    "self-harm/instructions": (),
    "self-harm/intent": (),
    "sexual": (),
    "sexual/minors": (),
    "violence": ("kill", "attack"),
    "violence/graphic": ("gore",),
}
FLAGGED_SCORE = 0.93
CLEAN_SCORE = 0.0002
DEFAULT_MODEL = "omni-moderation-latest"


def _texts(given: Any) -> list[str] | str:
    """The inputs' texts, or what is wrong with `input`."""
    if isinstance(given, str):
        return [given]
    if not isinstance(given, list) or not given:
        return "`input` must be a string or a non-empty array"
    texts = []
    for item in given:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text":
            texts.append(str(item.get("text") or ""))
        elif isinstance(item, dict) and item.get("type") == "image_url":
            texts.append("")
        else:
            return "each `input` item must be a string, a text or an image_url object"
    return texts


def _result(text: str) -> dict[str, Any]:
    lowered = text.lower()
    categories = {name: any(w in lowered for w in words) for name, words in TRIGGERS.items()}
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": {
            n: FLAGGED_SCORE if on else CLEAN_SCORE for n, on in categories.items()
        },
        "category_applied_input_types": {name: ["text"] for name in TRIGGERS},
    }


async def answer_moderation(request: web.Request, state: FakeState, body: bytes) -> web.Response:
    try:
        asked = orjson.loads(body)
    except orjson.JSONDecodeError:
        return errors.invalid_request("We could not parse the JSON body of your request.")
    if not isinstance(asked, dict):
        return errors.invalid_request("the body must be a JSON object")
    texts = _texts(asked.get("input"))
    if isinstance(texts, str):
        return errors.invalid_request(texts, param="input")
    model = asked.get("model") or DEFAULT_MODEL
    answer = {
        "id": f"modr-{next(state.ids):024x}",
        "model": str(model),
        "results": [_result(text) for text in texts],
    }
    return json_response(orjson.dumps(answer))
