"""The Converse / ConverseStream wire model (botocore service model `bedrock-runtime`
2023-09-30) as msgspec Structs: the request we send, the response and stream events we read.

Field names are the service's (camelCase on the wire through `rename="camel"`). Only the
members the adapter uses are declared; unknown members of responses are ignored, as botocore
ignores the `p` padding member of stream events.
"""

from __future__ import annotations

from typing import Any

import msgspec

# --------------------------------------------------------------------------- request


class _Out(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """Base of request Structs: unset members are left out, as the service expects."""


class CachePointBlock(_Out):
    type: str  # no default: omit_defaults would drop "default"
    ttl: str | None = None


class ImageSource(_Out):
    bytes: bytes  # msgspec writes bytes as base64, which is how rest-json carries blobs


class ImageBlock(_Out):
    format: str
    source: ImageSource


class DocumentSource(_Out):
    bytes: bytes


class DocumentBlock(_Out):
    format: str
    name: str
    source: DocumentSource


class ToolUseBlock(_Out):
    tool_use_id: str
    name: str
    input: Any


class ToolResultContent(_Out):
    text: str | None = None
    json: dict[str, Any] | None = None
    image: ImageBlock | None = None


class ToolResultBlock(_Out):
    tool_use_id: str
    content: list[ToolResultContent]


class ReasoningText(_Out):
    text: str
    signature: str | None = None


class ReasoningContentBlock(_Out):
    reasoning_text: ReasoningText | None = None
    redacted_content: bytes | None = None


class ContentBlock(_Out):
    text: str | None = None
    image: ImageBlock | None = None
    document: DocumentBlock | None = None
    tool_use: ToolUseBlock | None = None
    tool_result: ToolResultBlock | None = None
    reasoning_content: ReasoningContentBlock | None = None
    cache_point: CachePointBlock | None = None


class Message(_Out):
    role: str
    content: list[ContentBlock]


class SystemBlock(_Out):
    text: str | None = None
    cache_point: CachePointBlock | None = None


class ToolInputSchema(_Out):
    json: dict[str, Any]


class ToolSpecification(_Out, kw_only=True):  # kw_only is not inherited
    name: str
    description: str | None = None
    input_schema: ToolInputSchema
    strict: bool | None = None


class Tool(_Out):
    tool_spec: ToolSpecification | None = None
    cache_point: CachePointBlock | None = None


class SpecificToolChoice(_Out):
    name: str


class ToolChoice(_Out):
    auto: dict[str, Any] | None = None
    any: dict[str, Any] | None = None
    tool: SpecificToolChoice | None = None


class ToolConfiguration(_Out):
    tools: list[Tool]
    tool_choice: ToolChoice | None = None


class InferenceConfiguration(_Out):
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: list[str] | None = None


class JsonSchemaDefinition(_Out):
    schema: str  # the JSON Schema as a JSON *string*
    name: str | None = None
    description: str | None = None


class OutputFormatStructure(_Out):
    json_schema: JsonSchemaDefinition


class OutputFormat(_Out):
    type: str
    structure: OutputFormatStructure


class OutputConfig(_Out):
    text_format: OutputFormat


class ServiceTier(_Out):
    type: str


class ConverseRequest(_Out):
    messages: list[Message]
    system: list[SystemBlock] | None = None
    inference_config: InferenceConfiguration | None = None
    tool_config: ToolConfiguration | None = None
    additional_model_request_fields: dict[str, Any] | None = None
    output_config: OutputConfig | None = None
    request_metadata: dict[str, str] | None = None
    service_tier: ServiceTier | None = None


# --------------------------------------------------------------------------- response


class _In(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of response Structs: unknown members are ignored."""


class TokenUsage(_In):
    input_tokens: int
    output_tokens: int
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int | None = None


class ToolUseOutput(_In):
    tool_use_id: str
    name: str
    input: Any = None


class ReasoningTextOutput(_In):
    text: str = ""
    signature: str | None = None


class ReasoningOutput(_In):
    reasoning_text: ReasoningTextOutput | None = None
    redacted_content: str | None = None  # base64, kept as sent so it can go back unchanged


class CitationText(_In):
    text: str | None = None


class CitationsContent(_In):
    content: list[CitationText] = []


class OutputBlock(_In):
    text: str | None = None
    tool_use: ToolUseOutput | None = None
    reasoning_content: ReasoningOutput | None = None
    citations_content: CitationsContent | None = None


class OutputMessage(_In):
    role: str = "assistant"
    content: list[OutputBlock] = []


class ConverseOutput(_In):
    message: OutputMessage | None = None


class ConverseResponse(_In):
    output: ConverseOutput
    stop_reason: str
    usage: TokenUsage | None = None


# --------------------------------------------------------------------------- stream events
# Each event's payload is the event member unwrapped (`{"contentBlockIndex": 0, "delta": ...}`);
# the `:event-type` header names the member.


class ToolUseStart(_In):
    tool_use_id: str
    name: str


class BlockStart(_In):
    tool_use: ToolUseStart | None = None


class ContentBlockStart(_In):
    content_block_index: int
    start: BlockStart


class ToolUseDelta(_In):
    input: str = ""


class ReasoningDelta(_In):
    text: str | None = None
    signature: str | None = None
    redacted_content: str | None = None


class BlockDelta(_In):
    text: str | None = None
    tool_use: ToolUseDelta | None = None
    reasoning_content: ReasoningDelta | None = None


class ContentBlockDelta(_In):
    content_block_index: int
    delta: BlockDelta


class ContentBlockStop(_In):
    content_block_index: int


class MessageStop(_In):
    stop_reason: str


class StreamMetadata(_In):
    usage: TokenUsage | None = None


class ExceptionPayload(_In):
    message: str | None = None
    # modelStreamErrorException: what the model itself answered.
    original_status_code: int | None = None
    original_message: str | None = None


encode_request = msgspec.json.Encoder().encode
decode_response = msgspec.json.Decoder(ConverseResponse).decode
decode_block_start = msgspec.json.Decoder(ContentBlockStart).decode
decode_block_delta = msgspec.json.Decoder(ContentBlockDelta).decode
decode_block_stop = msgspec.json.Decoder(ContentBlockStop).decode
decode_message_stop = msgspec.json.Decoder(MessageStop).decode
decode_metadata = msgspec.json.Decoder(StreamMetadata).decode
decode_exception = msgspec.json.Decoder(ExceptionPayload).decode
