"""Guardrails (issue #19): checks before, beside and after a call, configured as LiteLLM's
`guardrails:` section, with LiteLLM's `CustomGuardrail` hook names.

- `pre_call` runs before the request is queued: a block is a 400 and nothing goes upstream;
  a masking guardrail (pii, regex with `action: mask`) rewrites the messages instead.
- `during_call` runs beside the provider call; a block cancels the call and is the answer.
- `post_call` checks (or masks) a whole answer before the client gets it.

Built in, no service needed: `keywords`, `regex`, `pii` (emails, phone numbers, card
numbers that pass the Luhn check, IBANs that pass mod-97, API-key-like secrets),
`max_input_tokens`. Anything else is `module.Class`, a CustomGuardrail subclass.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import msgspec

from workers.errors import InvalidRequest
from workers.settings.hooks import Guardrail, GuardrailMode, GuardrailParams
from workers.tokens import estimate_tokens

# Told of each check: (guardrail name, result: passed | blocked | masked, seconds).
GuardrailObserver = Callable[[str, str, float], None]


class GuardrailBlocked(InvalidRequest):
    """A guardrail refused the request or its answer: a 400 naming it and why."""

    default_code = "guardrail_blocked"

    def __init__(self, guardrail: str, reason: str) -> None:
        super().__init__(
            f"blocked by guardrail {guardrail!r}: {reason}",
            param=guardrail,
            code="guardrail_blocked",
        )
        self.guardrail = guardrail
        self.reason = reason


class CustomGuardrail:
    """The base of a custom guardrail, with LiteLLM's hook names. A hook blocks by raising
    (any exception; its message is the reason) and masks by returning the changed data (or
    response). `user_api_key_dict` has `key_alias`; `cache` is None."""

    def __init__(
        self,
        guardrail_name: str | None = None,
        event_hook: Any = None,
        default_on: bool = False,
        **kwargs: Any,
    ) -> None:
        self.guardrail_name = guardrail_name
        self.event_hook = event_hook
        self.default_on = default_on

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any] | None:
        return None

    async def async_moderation_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, call_type: str
    ) -> None:
        return None

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        return None


# ------------------------------------------------------------------------------ texts


def request_texts(data: dict[str, Any]) -> Iterator[str]:
    for _, text in _text_slots(data):
        yield text


def _text_slots(data: dict[str, Any]) -> Iterator[tuple[tuple[Any, Any], str]]:
    """(container, key) and the text of every text a request carries."""
    for message in data.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield (message, "content"), content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield (part, "text"), part["text"]
    given = data.get("input")
    if isinstance(given, str):
        yield (data, "input"), given
    elif isinstance(given, list):
        for i, item in enumerate(given):
            if isinstance(item, str):
                yield (given, i), item


def response_slots(response: dict[str, Any]) -> Iterator[tuple[tuple[Any, Any], str]]:
    for choice in response.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            yield (message, "content"), message["content"]


def _rewrite(slots: Iterator[tuple[tuple[Any, Any], str]], fn: Callable[[str], str]) -> bool:
    changed = False
    for (container, key), text in list(slots):
        new = fn(text)
        if new != text:
            container[key] = new
            changed = True
    return changed


# ------------------------------------------------------------------------------ built-ins


class _TextGuard(CustomGuardrail):
    """A built-in that looks at texts: `find` names what it found, `mask` replaces it."""

    action = "block"

    def find(self, text: str) -> str | None:
        raise NotImplementedError

    def mask(self, text: str) -> str:
        return text

    def _apply(self, slots: Iterator[tuple[tuple[Any, Any], str]]) -> bool:
        if self.action == "mask":
            return _rewrite(slots, self.mask)
        for _, text in slots:
            found = self.find(text)
            if found is not None:
                raise ValueError(found)
        return False

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any] | None:
        return data if self._apply(_text_slots(data)) else None

    async def async_moderation_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, call_type: str
    ) -> None:
        for _, text in _text_slots(data):
            found = self.find(text)
            if found is not None:
                raise ValueError(found)

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        return response if self._apply(response_slots(response)) else None


class KeywordGuard(_TextGuard):
    def __init__(self, params: GuardrailParams, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        words = "|".join(re.escape(k) for k in params.keywords if k)
        self._pattern = re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE) if words else None

    def find(self, text: str) -> str | None:
        if self._pattern is None:
            return None
        match = self._pattern.search(text)
        return None if match is None else f"a banned keyword ({match.group(0)!r})"


class RegexGuard(_TextGuard):
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


class PiiGuard(_TextGuard):
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
        estimate = estimate_tokens(given)
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


_BUILTINS: dict[str, Callable[..., CustomGuardrail]] = {
    "keywords": KeywordGuard,
    "regex": RegexGuard,
    "pii": PiiGuard,
    "max_input_tokens": MaxInputTokens,
    # LiteLLM's Presidio guardrail masks PII through an external analyzer; here the built-in
    # PII finder does the same job in-process, masking as Presidio does.
    "presidio": lambda params, **common: PiiGuard(
        msgspec.structs.replace(params, action="mask"), **common
    ),
}


def make_guardrail(entry: Guardrail) -> CustomGuardrail:
    params = entry.litellm_params
    common: dict[str, Any] = {
        "guardrail_name": entry.guardrail_name,
        "event_hook": params.mode,
        "default_on": params.default_on,
    }
    builtin = _BUILTINS.get(params.guardrail)
    if builtin is not None:
        return builtin(params, **common)
    module_name, _, name = params.guardrail.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"guardrail {params.guardrail!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, CustomGuardrail)):
        raise ValueError(f"guardrail {params.guardrail!r} is not a CustomGuardrail subclass")
    made: CustomGuardrail = cls(**{**params.params, **common})
    return made


# ------------------------------------------------------------------------------ the set


class Guardrails:
    """The configured guardrails, and which of them a request runs."""

    def __init__(self, entries: list[Guardrail], observer: GuardrailObserver | None = None) -> None:
        self.entries = {e.guardrail_name: (e, make_guardrail(e)) for e in entries}
        self.observer = observer

    def selected(
        self, data: dict[str, Any], mode: GuardrailMode
    ) -> list[tuple[str, CustomGuardrail]]:
        named = requested(data)
        return [
            (name, guard)
            for name, (entry, guard) in self.entries.items()
            if mode in entry.litellm_params.modes
            and (entry.litellm_params.default_on or name in named)
        ]

    def check_names(self, data: dict[str, Any]) -> None:
        unknown = requested(data) - set(self.entries)
        if unknown:
            raise InvalidRequest(
                f"unknown guardrails {sorted(unknown)}; configured: {sorted(self.entries)}",
                param="guardrails",
            )

    async def pre_call(self, data: dict[str, Any], who: Any, call_type: str) -> bool:
        """Run the pre_call guardrails; True if one changed `data` (masked)."""
        changed = False
        for name, guard in self.selected(data, "pre_call"):
            result = await self._run(name, guard.async_pre_call_hook(who, None, data, call_type))
            if isinstance(result, dict) and result is not data:
                data.clear()
                data.update(result)
            changed = changed or result is not None
        return changed

    async def during_call(self, data: dict[str, Any], who: Any, call_type: str) -> None:
        for name, guard in self.selected(data, "during_call"):
            await self._run(name, guard.async_moderation_hook(data, who, call_type))

    def masks_answers(self, data: dict[str, Any]) -> bool:
        return any(self._is_masking(name) for name, _ in self.selected(data, "post_call"))

    def _is_masking(self, name: str) -> bool:
        entry, guard = self.entries[name]
        return isinstance(guard, _TextGuard) and entry.litellm_params.action == "mask"

    async def post_call(
        self,
        data: dict[str, Any],
        who: Any,
        response: dict[str, Any],
        *,
        masking_only: bool = False,
    ) -> bool:
        """Run the post_call guardrails on a whole answer (with `masking_only`, only the
        built-ins that mask: a stream's chunk); True if one changed (masked) it."""
        changed = False
        for name, guard in self.selected(data, "post_call"):
            if masking_only and not self._is_masking(name):
                continue
            result = await self._run(name, guard.async_post_call_success_hook(data, who, response))
            if isinstance(result, dict) and result is not response:
                response.clear()
                response.update(result)
            changed = changed or result is not None
        return changed

    async def _run(self, name: str, hook: Coroutine[Any, Any, Any]) -> Any:
        """A hook's result; its exception, whatever it is, is a block naming the guardrail."""
        started = time.perf_counter()
        try:
            result = await hook
        except GuardrailBlocked:
            self._observe(name, "blocked", started)
            raise
        except Exception as exc:
            self._observe(name, "blocked", started)
            raise GuardrailBlocked(name, str(exc) or type(exc).__name__) from exc
        self._observe(name, "passed" if result is None else "masked", started)
        return result

    def _observe(self, name: str, result: str, started: float) -> None:
        if self.observer is not None:
            self.observer(name, result, time.perf_counter() - started)


def requested(data: Mapping[str, Any]) -> set[str]:
    """The guardrails a request names (`guardrails: [...]`, or in `metadata`, as LiteLLM)."""
    given = data.get("guardrails")
    if given is None and isinstance(data.get("metadata"), dict):
        given = data["metadata"].get("guardrails")
    if given is None:
        return set()
    if not isinstance(given, list) or not all(isinstance(n, str) for n in given):
        raise InvalidRequest("`guardrails` must be a list of guardrail names", param="guardrails")
    return set(given)


def caller_view(alias: str) -> SimpleNamespace:
    """What a custom guardrail's `user_api_key_dict` holds of the caller."""
    return SimpleNamespace(key_alias=alias, api_key=None, team_id=None, user_id=None)
