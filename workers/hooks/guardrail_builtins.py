"""The guardrails built in (issue #19): `keywords`, `regex`, `pii` (emails, phone numbers,
Luhn-checked cards, mod-97 IBANs, key-like secrets; LiteLLM's `presidio` masks with it),
`max_input_tokens`, needing no service; `llm_judge` (a model group of the config) and
`openai_moderation` (an OpenAI deployment's /v1/moderations)."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import aiohttp
import orjson

from workers.deployment import Deployment, Secret
from workers.hooks.guardrail_base import (
    CustomGuardrail,
    request_texts,
    response_slots,
    rewrite_texts,
    text_slots,
)
from workers.providers.passthrough import upstream_for
from workers.settings.hooks import DEFAULT_MODERATION_MODEL, OPENAI_API_BASE, GuardrailParams
from workers.tokens import estimate_tokens


class TextGuard(CustomGuardrail):
    """A built-in that looks at texts: `find` names what it found, `mask` replaces it."""

    action = "block"

    def find(self, text: str) -> str | None:
        raise NotImplementedError

    def mask(self, text: str) -> str:
        return text

    def _apply(self, slots: Iterator[tuple[tuple[Any, Any], str]]) -> bool:
        if self.action == "mask":
            return rewrite_texts(slots, self.mask)
        for _, text in slots:
            found = self.find(text)
            if found is not None:
                raise ValueError(found)
        return False

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any] | None:
        return data if self._apply(text_slots(data)) else None

    async def async_moderation_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, call_type: str
    ) -> None:
        for _, text in text_slots(data):
            found = self.find(text)
            if found is not None:
                raise ValueError(found)

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        return response if self._apply(response_slots(response)) else None


class KeywordGuard(TextGuard):
    def __init__(self, params: GuardrailParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        words = "|".join(re.escape(k) for k in params.keywords if k)
        self._pattern = re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE) if words else None

    def find(self, text: str) -> str | None:
        if self._pattern is None:
            return None
        match = self._pattern.search(text)
        return None if match is None else f"a banned keyword ({match.group(0)!r})"


class RegexGuard(TextGuard):
    def __init__(self, params: GuardrailParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = params.action
        self._patterns = [re.compile(p) for p in params.patterns]

    def find(self, text: str) -> str | None:
        for i, pattern in enumerate(self._patterns):
            if pattern.search(text):
                return f"text matching pattern #{i + 1}"
        return None

    def mask(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub("[REDACTED]", text)
        return text


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,4}(?!\w)")
_SECRET = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
)


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", match.group(0))
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _iban(match: re.Match[str]) -> bool:
    return iban_ok(match.group(0))


def _phone(match: re.Match[str]) -> bool:
    return 9 <= len(re.sub(r"\D", "", match.group(0))) <= 15


# Order matters: secrets and cards before phone numbers, which are the loosest pattern.
_PII: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], bool] | None, str]] = [
    ("secret", _SECRET, None, "[SECRET]"),
    ("email", _EMAIL, None, "[EMAIL]"),
    ("iban", _IBAN, _iban, "[IBAN]"),
    ("credit_card", _CARD, _card, "[CREDIT_CARD]"),
    ("phone", _PHONE, _phone, "[PHONE]"),
]


class PiiGuard(TextGuard):
    def __init__(self, params: GuardrailParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = params.action
        wanted = set(params.entities) or {name for name, *_ in _PII}
        self._kinds = [kind for kind in _PII if kind[0] in wanted]

    def find(self, text: str) -> str | None:
        for name, pattern, check, _ in self._kinds:
            for match in pattern.finditer(text):
                if check is None or check(match):
                    return f"personal data ({name})"
        return None

    def mask(self, text: str) -> str:
        for _, pattern, check, label in self._kinds:

            def replace(match: re.Match[str], check: Any = check, label: str = label) -> str:
                return label if check is None or check(match) else match.group(0)

            text = pattern.sub(replace, text)
        return text


class MaxInputTokens(CustomGuardrail):
    def __init__(self, params: GuardrailParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = params.max_input_tokens or 0

    def _check(self, data: dict[str, Any]) -> None:
        given = data.get("messages") if "messages" in data else data.get("input")
        # Anthropic's `system` and Responses' `instructions` are input too.
        extra = [data[name] for name in ("system", "instructions") if data.get(name)]
        estimate = estimate_tokens(given) + sum(estimate_tokens(part) for part in extra)
        if self.limit and estimate > self.limit:
            raise ValueError(f"the input is about {estimate} tokens, over {self.limit}")

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any] | None:
        self._check(data)
        return None

    async def async_moderation_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, call_type: str
    ) -> None:
        self._check(data)


# How an llm_judge asks its model group: (group, messages) -> the answer's text. The front
# door gives one that queues the question like any request (broker/guardrails.py).
Ask = Callable[[str, list[dict[str, Any]]], Coroutine[Any, Any, str]]


class LlmJudge(CustomGuardrail):
    """A model group judges the request's text; an answer containing `block_if` blocks."""

    def __init__(self, params: GuardrailParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = params.model or ""
        self.prompt = params.prompt
        self.block_if = params.block_if.lower()
        self.ask: Ask | None = None

    async def _judge(self, data: dict[str, Any]) -> None:
        if self.ask is None:
            raise ValueError("llm_judge runs only in the service (it asks a model group)")
        question = [
            {"role": "system", "content": self.prompt},
            {"role": "user", "content": "\n\n".join(request_texts(data))},
        ]
        answer = await self.ask(self.model, question)
        if self.block_if in answer.lower():
            raise ValueError(f"the judge ({self.model}) answered {answer[:80]!r}")

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any] | None:
        await self._judge(data)
        return None

    async def async_moderation_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, call_type: str
    ) -> None:
        await self._judge(data)


# The upstream HTTP session a moderation call goes through (the front door's own, shared
# with its pass-through routes: one session per process).
SessionSource = Callable[[], aiohttp.ClientSession]
MODERATION_TIMEOUT_S = 30.0


class OpenAIModeration(CustomGuardrail):
    """OpenAI's moderation endpoint on the request's texts (pre_call, during_call) or the
    answer's (post_call): a flagged result blocks, naming its categories. The deployment is
    a model group of the config (`model` names it) or LiteLLM's `api_base` and `api_key`
    with `model` as the moderation model. A moderation that cannot be had blocks too: the
    check fails closed."""

    def __init__(self, params: GuardrailParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = params.model or DEFAULT_MODERATION_MODEL
        key = params.api_key
        self.deployment = Deployment(
            provider="openai",
            model=self.model,
            api_base=params.api_base or OPENAI_API_BASE,
            api_key=Secret(key) if key else None,
        )
        self.session: SessionSource | None = None

    def connect(self, session: SessionSource, group: list[Deployment] | None = None) -> None:
        """Set by the front door: its session, and the model group `model` names, if any."""
        self.session = session
        if group:
            self.deployment = group[0]

    async def moderate(self, texts: list[str]) -> None:
        texts = [text for text in texts if text]
        if not texts:
            return
        if self.session is None:
            raise ValueError("openai_moderation runs only in the service")
        results = await self._results(texts)
        if any(result.get("flagged") for result in results):
            found = sorted(
                {
                    name
                    for result in results
                    for name, on in (result.get("categories") or {}).items()
                    if on is True
                }
            )
            raise ValueError(f"flagged by OpenAI moderation ({', '.join(found) or 'flagged'})")

    async def _results(self, texts: list[str]) -> list[dict[str, Any]]:
        assert self.session is not None
        upstream = upstream_for(self.deployment)
        body = orjson.dumps({"model": self.deployment.model, "input": texts})
        headers = {**upstream.headers, "Content-Type": "application/json"}
        try:
            async with self.session().post(
                upstream.url("v1/moderations", {}),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=MODERATION_TIMEOUT_S),
                allow_redirects=False,
            ) as reply:
                answer = await reply.read()
                status = reply.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ValueError(
                f"the moderation endpoint is unreachable ({type(exc).__name__})"
            ) from None
        if status != 200:
            raise ValueError(f"the moderation endpoint answered {status}")
        try:
            results = orjson.loads(answer)["results"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ValueError("the moderation endpoint's answer has no results") from None
        return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any] | None:
        await self.moderate(list(request_texts(data)))
        return None

    async def async_moderation_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, call_type: str
    ) -> None:
        await self.moderate(list(request_texts(data)))

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        if isinstance(response, dict):
            await self.moderate([text for _, text in response_slots(response)])
        return None
