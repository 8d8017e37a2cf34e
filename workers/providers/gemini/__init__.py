"""The Gemini API adapter (issue #7): OpenAI Chat Completions and Embeddings <-> Gemini's
generateContent, streamGenerateContent?alt=sse, embedContent and batchEmbedContents.

    adapter.py     the Adapter: URLs, auth header, HTTP, stream loop
    request.py     one chat request -> one GenerateContentRequest body (the steps)
    refusals.py    parameters Gemini cannot honor, as data, and the admission step
    contents.py    messages -> systemInstruction + contents (tool calls, results, media)
    media.py       data: URIs and fetched http(s) images -> inlineData
    generation.py  sampling, output format, thinking, tools -> generationConfig/tools/toolConfig
    response.py    GenerateContentResponse -> chat.completion (finishReason, usageMetadata)
    stream.py      SSE events -> chat.completion.chunk batches
    embeddings.py  embeddings both ways
    ids.py         tool-call ids that carry thought signatures
    errors.py      google.rpc.Status -> our error tree
    wire.py        Gemini's response Structs
"""

from workers.providers.gemini.adapter import GeminiAdapter

__all__ = ["GeminiAdapter"]
