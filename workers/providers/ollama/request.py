"""OpenAI chat request -> Ollama's `/api/chat` or `/api/generate` body.

Sampling parameters go into `options` under Ollama's names (`max_tokens` -> `num_predict`);
`response_format` becomes `format` ("json", or the JSON schema itself); tools pass as
OpenAI's shape, which Ollama takes; images go as base64 in `images` (data: URLs only: Ollama
cannot fetch a URL). What Ollama cannot honor is refused (or dropped with drop_params).
"""

from __future__ import annotations

from typing import Any

import orjson

from workers.errors import InvalidRequest
from workers.providers.base import Refuse
from workers.text_completions import prompt_of

# OpenAI name -> Ollama's `options` name.
OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repetition_penalty": "repeat_penalty",
    "stop": "stop",
}
REFUSED = {
    "logit_bias": "Ollama has no logit bias",
    "logprobs": "Ollama does not return log probabilities",
    "top_logprobs": "Ollama does not return log probabilities",
    "thinking": "Ollama's models think by their own settings",
    "audio": "Ollama has no audio output",
    "prediction": "Ollama has no predicted outputs",
}
# Fields consumed here or meaningless to Ollama, never forwarded.
_HANDLED = {"model", "messages", "stream", "stream_options", "tools", "tool_choice"}
_HANDLED |= {"response_format", "n", "user", "metadata", "store", "parallel_tool_calls"}
_HANDLED |= set(OPTION_NAMES) | set(REFUSED)


def chat_body(body: dict[str, Any], model: str, refuse: Refuse, *, stream: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "stream": stream}
    out["messages"] = [_message(m, i) for i, m in enumerate(body.get("messages") or ())]
    _common(body, out, refuse)
    if body.get("tools"):
        out["tools"] = body["tools"]
    if body.get("tool_choice") not in (None, "auto"):
        refuse("tool_choice", "Ollama chooses tools itself (only `auto`)")
    return out


def generate_body(
    body: dict[str, Any], model: str, refuse: Refuse, *, stream: bool
) -> dict[str, Any]:
    """A /v1/completions request (one user message holding the prompt) for /api/generate."""
    out: dict[str, Any] = {"model": model, "stream": stream}
    out["prompt"] = prompt_of(list(body.get("messages") or ()))
    _common(body, out, refuse)
    return out


def _common(body: dict[str, Any], out: dict[str, Any], refuse: Refuse) -> None:
    for param, reason in REFUSED.items():
        if body.get(param) not in (None, False):
            refuse(param, reason)
    if (body.get("n") or 1) > 1:
        refuse("n", "Ollama answers with one choice")
    options = {
        theirs: body[ours] for ours, theirs in OPTION_NAMES.items() if body.get(ours) is not None
    }
    if isinstance(options.get("stop"), str):
        options["stop"] = [options["stop"]]
    if options:
        out["options"] = options
    fmt = _format(body.get("response_format"))
    if fmt is not None:
        out["format"] = fmt
    # Anything else (keep_alive, think, Ollama's own fields) goes on as sent.
    out.update({k: v for k, v in body.items() if k not in _HANDLED})


def _format(response_format: Any) -> Any:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if schema is not None else "json"
    return None


def _message(message: dict[str, Any], index: int) -> dict[str, Any]:
    role = message.get("role")
    out: dict[str, Any] = {"role": "system" if role == "developer" else role}
    content = message.get("content")
    if isinstance(content, list):
        out["content"] = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
        images = [_image(p, index) for p in content if isinstance(p, dict)]
        if any(images):
            out["images"] = [image for image in images if image]
    else:
        out["content"] = content or ""
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = [_tool_call(call) for call in calls if isinstance(call, dict)]
    if role == "tool" and message.get("name"):
        out["tool_name"] = message["name"]
    return out


def _image(part: dict[str, Any], index: int) -> str | None:
    if part.get("type") != "image_url":
        return None
    url = str((part.get("image_url") or {}).get("url", ""))
    if not url.startswith("data:") or ";base64," not in url:
        raise InvalidRequest(
            "Ollama takes images inline: send a base64 `data:` URL",
            param=f"messages[{index}].content",
            code="unsupported_value",
        )
    return url.split(";base64,", 1)[1]


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments else {}
        except orjson.JSONDecodeError:
            arguments = {}
    return {"function": {"name": function.get("name", ""), "arguments": arguments}}
