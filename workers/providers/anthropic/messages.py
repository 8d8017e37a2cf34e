"""OpenAI `messages` -> Anthropic's top-level `system` and alternating user/assistant turns.

- system and developer messages, wherever they stand, become `system` in their order: one
  string joined by blank lines, or text blocks when any of them carries `cache_control`;
- tool messages become `tool_result` blocks of a user turn; consecutive turns of one role
  (several tool results, a tool result then a user message) merge into one message;
- assistant `tool_calls` become `tool_use` blocks whose `input` is the parsed arguments, after
  the `thinking_blocks` the assistant message carries back (Anthropic wants them first);
- the conversation must then start with a user turn: an assistant opening is refused (400)
  rather than padded with an invented user message.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from workers.errors import InvalidRequest
from workers.providers.base import Refuse
from workers.wire import ContentPart, Message, ToolCall

PROVIDER = "anthropic"
Block = dict[str, Any]
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
DOCUMENT_MEDIA_TYPES = frozenset({"application/pdf"})


class Conversation(NamedTuple):
    system: str | list[Block] | None
    messages: list[dict[str, Any]]


class _Turn(NamedTuple):
    role: str
    blocks: list[Block]


def translate_messages(messages: list[Message], refuse: Refuse) -> Conversation:
    system: list[Block] = []
    turns: list[_Turn] = []
    first_index: int | None = None
    for i, message in enumerate(messages):
        if message.name is not None and message.role not in ("tool", "function"):
            refuse(f"messages[{i}].name", "Anthropic messages carry no author name")
        if message.role in ("system", "developer"):
            system.extend(_system_blocks(message, i))
            continue
        turn = _turn(message, i)
        first_index = i if first_index is None else first_index
        if not turn.blocks:
            continue  # an empty assistant message says nothing Anthropic could take
        if turns and turns[-1].role == turn.role:
            turns[-1].blocks.extend(turn.blocks)
        else:
            turns.append(turn)
    _check_opening(turns, first_index)
    return Conversation(_system(system), [_message(turn) for turn in turns])


def _check_opening(turns: list[_Turn], first_index: int | None) -> None:
    if not turns:
        raise InvalidRequest(
            "Anthropic needs at least one user message besides system messages",
            param="messages",
            provider=PROVIDER,
        )
    if turns[0].role != "user":
        raise InvalidRequest(
            f"Anthropic requires the conversation to start with a user message; "
            f"messages[{first_index}] is from the assistant",
            param=f"messages[{first_index}].role",
            provider=PROVIDER,
        )


def _system(blocks: list[Block]) -> str | list[Block] | None:
    blocks = [block for block in blocks if block["text"]]
    if not blocks:
        return None
    if any("cache_control" in block for block in blocks):
        return blocks
    return "\n\n".join(block["text"] for block in blocks)


def _message(turn: _Turn) -> dict[str, Any]:
    blocks = turn.blocks
    # A lone plain text block is sent as the string form, as Anthropic's own examples do.
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"} and blocks[0]["type"] == "text":
        return {"role": turn.role, "content": blocks[0]["text"]}
    return {"role": turn.role, "content": blocks}


# --------------------------------------------------------------------------- per role


def _system_blocks(message: Message, i: int) -> list[Block]:
    content = message.content
    if isinstance(content, str) or content is None:
        blocks = [{"type": "text", "text": content or ""}]
    else:
        blocks = []
        for j, part in enumerate(content):
            if part.type != "text":
                raise _bad_part(i, j, part, f"a {message.role} message takes only text")
            blocks.append(_text_block(part))
    return _with_cache_control(blocks, message)


def _turn(message: Message, i: int) -> _Turn:
    if message.role == "user":
        return _Turn("user", _with_cache_control(_user_blocks(message.content, i), message))
    if message.role == "assistant":
        return _Turn("assistant", _with_cache_control(_assistant_blocks(message, i), message))
    if message.role == "tool":
        return _Turn("user", [_tool_result(message, i)])
    raise InvalidRequest(
        f"messages[{i}]: legacy `{message.role}` messages are not translated for Anthropic; "
        "send tool messages",
        param=f"messages[{i}].role",
        provider=PROVIDER,
    )


def _user_blocks(content: str | list[ContentPart] | None, i: int) -> list[Block]:
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content or ""}]
    return [_user_part(part, i, j) for j, part in enumerate(content)]


def _user_part(part: ContentPart, i: int, j: int) -> Block:
    if part.type == "text":
        return _text_block(part)
    if part.type == "image_url" and part.image_url is not None:
        block = {"type": "image", "source": _image_source(part.image_url.url, i, j)}
    elif part.type == "file" and part.file is not None:
        block = {"type": "document", "source": _document_source(part, i, j)}
    else:
        raise _bad_part(i, j, part, "Anthropic takes text, image_url and PDF file parts")
    if part.cache_control is not None:
        block["cache_control"] = part.cache_control
    return block


def _assistant_blocks(message: Message, i: int) -> list[Block]:
    if message.function_call is not None:
        raise InvalidRequest(
            f"messages[{i}]: legacy `function_call` is not translated for Anthropic; "
            "send tool_calls",
            param=f"messages[{i}].function_call",
            provider=PROVIDER,
        )
    # Signed thinking goes back unchanged and first: Anthropic checks it when thinking is on.
    blocks: list[Block] = [dict(block) for block in message.thinking_blocks or ()]
    content = message.content
    if isinstance(content, str):
        texts = [content]
    else:
        texts = [part.text or part.refusal or "" for part in content or ()]
    # Anthropic refuses empty text blocks; an assistant turn of only tool calls has none.
    blocks.extend({"type": "text", "text": text} for text in texts if text)
    for k, call in enumerate(message.tool_calls or ()):
        blocks.append(_tool_use(call, i, k))
    return blocks


def _tool_use(call: ToolCall, i: int, k: int) -> Block:
    arguments = call.function.arguments
    param = f"messages[{i}].tool_calls[{k}].function.arguments"
    try:
        parsed = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"messages[{i}].tool_calls[{k}]: arguments are not valid JSON ({exc}); "
            "Anthropic needs them as an object",
            param=param,
            provider=PROVIDER,
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidRequest(
            f"messages[{i}].tool_calls[{k}]: arguments must be a JSON object for Anthropic",
            param=param,
            provider=PROVIDER,
        )
    return {"type": "tool_use", "id": call.id, "name": call.function.name, "input": parsed}


def _tool_result(message: Message, i: int) -> Block:
    content = message.content
    result: str | list[Block]
    if content is None or isinstance(content, str):
        result = content or ""
    else:
        result = [_tool_result_part(part, i, j) for j, part in enumerate(content)]
    block: Block = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": result}
    if message.cache_control is not None:
        block["cache_control"] = message.cache_control
    return block


def _tool_result_part(part: ContentPart, i: int, j: int) -> Block:
    if part.type == "text":
        return _text_block(part)
    if part.type == "image_url" and part.image_url is not None:
        return {"type": "image", "source": _image_source(part.image_url.url, i, j)}
    raise _bad_part(i, j, part, "a tool result takes text and image_url parts")


# --------------------------------------------------------------------------- parts


def _text_block(part: ContentPart) -> Block:
    block: Block = {"type": "text", "text": part.text or ""}
    if part.cache_control is not None:
        block["cache_control"] = part.cache_control
    return block


def _with_cache_control(blocks: list[Block], message: Message) -> list[Block]:
    """A message-level breakpoint marks the message's last block, where Anthropic wants it."""
    if message.cache_control is not None and blocks:
        blocks[-1]["cache_control"] = message.cache_control
    return blocks


def _image_source(url: str, i: int, j: int) -> Block:
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    media_type, data = _data_uri(url, i, j, "image_url.url")
    if media_type not in IMAGE_MEDIA_TYPES:
        raise _bad_value(i, j, "image_url.url", f"Anthropic takes {_listed(IMAGE_MEDIA_TYPES)}")
    return {"type": "base64", "media_type": media_type, "data": data}


def _document_source(part: ContentPart, i: int, j: int) -> Block:
    assert part.file is not None  # checked by the caller
    if part.file.file_data is None:
        raise _bad_value(i, j, "file", "Anthropic needs `file_data`; OpenAI file ids mean nothing")
    media_type, data = _data_uri(part.file.file_data, i, j, "file.file_data")
    if media_type not in DOCUMENT_MEDIA_TYPES:
        raise _bad_value(i, j, "file.file_data", "Anthropic takes PDF documents")
    return {"type": "base64", "media_type": media_type, "data": data}


def _data_uri(uri: str, i: int, j: int, field: str) -> tuple[str, str]:
    """(media type, base64 data) of `data:<type>;base64,<data>`."""
    header, comma, data = uri.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64") and comma and data):
        raise _bad_value(i, j, field, "expected an http(s) URL or a base64 data: URI")
    return header[len("data:") : -len(";base64")].lower(), data


def _listed(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def _bad_part(i: int, j: int, part: ContentPart, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"messages[{i}].content[{j}]: `{part.type}` parts are not supported ({why})",
        param=f"messages[{i}].content[{j}].type",
        provider=PROVIDER,
    )


def _bad_value(i: int, j: int, field: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"messages[{i}].content[{j}].{field}: {why}",
        param=f"messages[{i}].content[{j}].{field}",
        provider=PROVIDER,
    )
