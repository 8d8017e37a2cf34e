"""The base of every config section Struct."""

from __future__ import annotations

from typing import ClassVar

import msgspec


class Section(
    msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, repr_omit_defaults=True
):
    """A config section: typed, immutable, typos refused.

    The loader reads three class-level key sets while it walks the YAML tree:
    - `litellm_ignored`: keys LiteLLM documents that Switchboard does not implement; they are
      reported loudly and dropped, so a LiteLLM config still loads. A name ending in `*` is a
      prefix (LiteLLM's price table alone has dozens of `*_cost_per_*` keys).
    - `passthrough_keys`: keys with no field of their own that the loader gathers elsewhere
      (a deployment's default request parameters).
    - `derived_fields`: fields the loader fills; writing them in YAML is an error.
    - `free_form_field`: where a free-form section (LiteLLM's `model_info`) keeps keys it has
      no field for, instead of refusing them; "" for the usual strict section.
    """

    litellm_ignored: ClassVar[frozenset[str]] = frozenset()
    passthrough_keys: ClassVar[frozenset[str]] = frozenset()
    derived_fields: ClassVar[frozenset[str]] = frozenset()
    free_form_field: ClassVar[str] = ""


def names(text: str) -> frozenset[str]:
    """A key set written as whitespace-separated names (long LiteLLM lists stay readable)."""
    return frozenset(text.split())
