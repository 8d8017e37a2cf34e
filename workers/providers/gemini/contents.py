"""OpenAI messages -> Gemini `systemInstruction` and `contents`.

Gemini knows two roles, `user` and `model`: system and developer messages become the one
systemInstruction (in order), assistant messages become `model` turns, tool results become
`functionResponse` parts of a `user` turn, and consecutive turns of one role are merged.
Gemini matches a functionResponse to its call by function *name* (and order), so the
tool_call_id -> name map is rebuilt from the history; the thoughtSignature each call needs on
the next turn comes back inside its tool-call id (see `ids`).
"""

from __future__ import annotations

from typing import Any

import orjson

from workers.errors import InvalidRequest
from workers.http import HttpClient
from workers.providers.base import Refuse
from workers.providers.gemini import ids, media
from workers.providers.gemini.errors import PROVIDER
from workers.providers.gemini.response import SIGNATURE_BLOCK
from workers.providers.media import MediaFetches
from workers.wire import ContentPart, Message, ToolCall

JSONObject = dict[str, Any]
# input_audio `format` -> MIME type Gemini reads.
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


class ContentsBuilder:
    """Builds one request's systemInstruction and contents; fetches http(s) images."""

    def __init__(
        self,
        http: HttpClient,
        media: MediaFetches,
        refuse: Refuse,
        *,
        model: str,
        timeout_s: float | None,
    ) -> None:
        self.http = http
        self.media = media
        self._refuse = refuse
        self.model = model
        self.timeout_s = timeout_s
        self.system: list[JSONObject] = []
        self.contents: list[JSONObject] = []
        self.names: dict[str, str] = {}  # tool_call_id -> function name

    async def build(self, messages: list[Message]) -> tuple[JSONObject | None, list[JSONObject]]:
        for i, message in enumerate(messages):
            await self._add(i, message)
        system = {"parts": self.system} if self.system else None
        return system, self.contents

    async def _add(self, i: int, message: Message) -> None:
        self._check_fields(i, message)
        role = message.role
        if role in ("system", "developer"):
            self.system.extend(await self._parts(i, message.content, text_only=True))
        elif role == "user":
            self._append("user", await self._parts(i, message.content))
        elif role == "assistant":
            self._append("model", await self._assistant_parts(i, message))
        elif role == "tool":
            self._append("user", [self._function_response(i, message)])
        else:
            self._refuse(f"messages[{i}].role", "legacy `function` messages; send `tool` messages")

    def _check_fields(self, i: int, message: Message) -> None:
        if message.name is not None and message.role != "tool":
            self._refuse(f"messages[{i}].name", "Gemini turns carry no author name")
        if message.cache_control is not None:
            self._refuse(f"messages[{i}].cache_control", _IMPLICIT_CACHE)
        if message.audio is not None:
            self._refuse(f"messages[{i}].audio", "Gemini takes no assistant audio references")
        if message.function_call is not None:
            self._refuse(f"messages[{i}].function_call", "legacy; send `tool_calls`")

    def _append(self, role: str, parts: list[JSONObject]) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})

    # ------------------------------------------------------------------ parts

    async def _parts(
        self, i: int, content: str | list[ContentPart] | None, *, text_only: bool = False
    ) -> list[JSONObject]:
        if content is None:
            return []
        if isinstance(content, str):
            return [{"text": content}]
        parts = []
        for j, part in enumerate(content):
            converted = await self._part(f"messages[{i}].content[{j}]", part, text_only)
            if converted is not None:
                parts.append(converted)
        return parts

    async def _part(self, param: str, part: ContentPart, text_only: bool) -> JSONObject | None:
        if part.cache_control is not None:
            self._refuse(f"{param}.cache_control", _IMPLICIT_CACHE)
        if part.type == "text":
            return {"text": part.text or ""}
        if part.type == "refusal" and part.refusal is not None:
            return {"text": part.refusal}
        if text_only:
            self._refuse(f"{param}.type", f"a {part.type} part where Gemini takes only text")
            return None
        if part.type == "image_url" and part.image_url is not None:
            return await self._image(param, part)
        if part.type == "input_audio" and part.input_audio is not None:
            audio = part.input_audio
            mime = _AUDIO_TYPES.get(audio.format, f"audio/{audio.format}")
            return media.inline_data(mime, audio.data)
        if part.type == "file" and part.file is not None and part.file.file_data:
            return media.from_data_uri(part.file.file_data, param=f"{param}.file", model=self.model)
        if part.type == "file" and part.file is not None:
            self._refuse(f"{param}.file.file_id", "Gemini reads files inline: send file_data")
            return None
        self._refuse(f"{param}.type", f"no Gemini part for a `{part.type}` content part")
        return None

    async def _image(self, param: str, part: ContentPart) -> JSONObject | None:
        image = part.image_url
        assert image is not None  # checked by the caller
        if image.detail not in (None, "auto"):
            self._refuse(f"{param}.image_url.detail", "Gemini sets no per-image resolution")
        if image.url.startswith("data:"):
            return media.from_data_uri(image.url, param=f"{param}.image_url", model=self.model)
        return await media.fetch_inline(
            self.http,
            self.media,
            image.url,
            param=f"{param}.image_url",
            model=self.model,
            timeout_s=self.timeout_s,
        )

    async def _assistant_parts(self, i: int, message: Message) -> list[JSONObject]:
        parts = [p for p in await self._parts(i, message.content, text_only=True) if p.get("text")]
        if message.refusal:
            parts.append({"text": message.refusal})
        signature = _text_signature(message)
        if signature and parts:
            parts[0]["thoughtSignature"] = signature
        for k, call in enumerate(message.tool_calls or ()):
            param = f"messages[{i}].tool_calls[{k}].function.arguments"
            part: JSONObject = {
                "functionCall": {"name": call.function.name, "args": self._args(call, param)}
            }
            call_signature = ids.signature_of(call.id)
            if call_signature:
                part["thoughtSignature"] = call_signature
            self.names[call.id] = call.function.name
            parts.append(part)
        return parts

    def _args(self, call: ToolCall, param: str) -> JSONObject:
        text = call.function.arguments or "{}"
        try:
            args = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                f"`{param}` is not JSON: {text[:80]!r}", param=param, model=self.model
            ) from exc
        if not isinstance(args, dict):
            raise InvalidRequest(f"`{param}` must be a JSON object", param=param, model=self.model)
        return args

    def _function_response(self, i: int, message: Message) -> JSONObject:
        call_id = message.tool_call_id or ""
        name = self.names.get(call_id) or message.name
        if not name:
            raise InvalidRequest(
                f"messages[{i}]: tool_call_id {call_id!r} answers no earlier assistant tool "
                "call, and Gemini matches tool results to calls by function name",
                param=f"messages[{i}].tool_call_id",
                provider=PROVIDER,
                model=self.model,
            )
        if isinstance(message.content, list) and any(p.type != "text" for p in message.content):
            self._refuse(f"messages[{i}].content", "Gemini takes only text tool results")
        return {"functionResponse": {"name": name, "response": _result_object(message.text())}}


_IMPLICIT_CACHE = "Gemini caches prompts implicitly (use `cached_content` for explicit caches)"


def _result_object(text: str) -> JSONObject:
    """A tool result as the object Gemini's `response` must be (non-objects are wrapped)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def _text_signature(message: Message) -> str | None:
    for block in message.thinking_blocks or ():
        if block.get("type") == SIGNATURE_BLOCK and isinstance(block.get("signature"), str):
            signature: str = block["signature"]
            return signature
    return None
