"""`ollama/`: Ollama's native API (issue #16). `ollama_chat/` stays Ollama's OpenAI surface.

- `request`: OpenAI chat request -> `/api/chat` (or `/api/generate` for a /v1/completions
  request) body; `options` for sampling, `format` for JSON mode
- `adapter`: the calls, NDJSON streams and `{"error": ...}` bodies -> OpenAI objects
"""

from workers.providers.ollama.adapter import OllamaAdapter

__all__ = ["OllamaAdapter"]
