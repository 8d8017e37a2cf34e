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
import time
from collections.abc import Callable, Coroutine, Mapping
from types import SimpleNamespace
from typing import Any, NamedTuple, cast

import msgspec

from workers.errors import InvalidRequest
from workers.hooks.guardrail_base import (
    CustomGuardrail,
    GuardrailBlocked,
    response_slots,
    rewrite_texts,
    text_slots,
)
from workers.hooks.guardrail_builtins import (
    KeywordGuard,
    LlmJudge,
    MaxInputTokens,
    OpenAIModeration,
    PiiGuard,
    RegexGuard,
    TextGuard,
)
from workers.settings.hooks import Guardrail, GuardrailMode

# Told of each check: (guardrail name, result: passed | blocked | masked, seconds).
GuardrailObserver = Callable[[str, str, float], None]

# A custom guardrail subclasses these, imported from here as the docs show.
__all__ = ["CustomGuardrail", "GuardrailBlocked", "Guardrails", "make_guardrail"]

_BUILTINS: dict[str, Callable[..., CustomGuardrail]] = {
    "llm_judge": LlmJudge,
    "keywords": KeywordGuard,
    "regex": RegexGuard,
    "pii": PiiGuard,
    "max_input_tokens": MaxInputTokens,
    "openai_moderation": OpenAIModeration,
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


_MODES = frozenset({"pre_call", "during_call", "post_call", "logging_only"})


class _Entry(NamedTuple):
    modes: list[GuardrailMode]
    default_on: bool
    guard: CustomGuardrail
    # A built-in with `action: mask` (it may run on each chunk of a stream).
    masks: bool


class Guardrails:
    """The configured guardrails, and which of them a request runs."""

    @classmethod
    def of(cls, guards: list[CustomGuardrail]) -> Guardrails:
        """The SDK's: CustomGuardrail objects (in `switchboard.callbacks`), each with its
        own `guardrail_name`, `event_hook` (a mode or a list of them) and `default_on`."""
        made = cls([])
        for i, guard in enumerate(guards):
            hook = guard.event_hook or "pre_call"
            given = [hook] if isinstance(hook, str) else list(hook)
            modes = [cast(GuardrailMode, m) for m in given if m in _MODES]
            name = guard.guardrail_name or f"{type(guard).__name__}[{i}]"
            made.entries[name] = _Entry(modes, guard.default_on, guard, False)
        return made

    def __init__(self, entries: list[Guardrail], observer: GuardrailObserver | None = None) -> None:
        self.entries: dict[str, _Entry] = {
            e.guardrail_name: _Entry(
                e.litellm_params.modes,
                e.litellm_params.default_on,
                make_guardrail(e),
                e.litellm_params.action == "mask",
            )
            for e in entries
        }
        self.observer = observer

    def selected(
        self, data: dict[str, Any], mode: GuardrailMode
    ) -> list[tuple[str, CustomGuardrail]]:
        named = requested(data)
        return [
            (name, guard)
            for name, (modes, default_on, guard, _) in self.entries.items()
            if mode in modes and (default_on or name in named)
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
        entry = self.entries[name]
        return isinstance(entry.guard, TextGuard) and entry.masks

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


def log_masker(guardrails: Guardrails) -> Callable[[dict[str, Any], Any], None] | None:
    """What `logging_only` guardrails do: mask the texts of a request and its response as
    the callbacks will see them (in place, on copies the event owns). None without any."""
    masks = [
        entry.guard
        for entry in guardrails.entries.values()
        if "logging_only" in entry.modes and isinstance(entry.guard, TextGuard)
    ]
    if not masks:
        return None

    def mask(request: dict[str, Any], response: Any) -> None:
        for guard in masks:
            rewrite_texts(text_slots(request), guard.mask)
            if isinstance(response, dict):
                rewrite_texts(response_slots(response), guard.mask)

    return mask


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
