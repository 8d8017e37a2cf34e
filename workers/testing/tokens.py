"""Deterministic token counting and text splitting for the fakes.

Real tokenizers differ per provider; the fakes only need counts that are stable, plausible
(about four characters per token) and never zero, so usage assertions can be exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

CHARS_PER_TOKEN = 4
# A word with the whitespace before it, like the pieces real streams carry (" How", " can").
_WORD = re.compile(r"\s*\S+\s*$|\s*\S+")


def count_tokens(text: str) -> int:
    """Tokens in `text`: len/4 rounded up, at least 1."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def count_prompt_tokens(texts: Iterable[str]) -> int:
    """Tokens in a prompt made of several texts, counted as one text."""
    return count_tokens("".join(texts))


def split_text(text: str, pieces: int) -> tuple[str, ...]:
    """`text` cut into `pieces` non-empty parts that join back to it.

    Cuts fall between words when there are enough words, else between characters; a text
    shorter than `pieces` characters gives one part per character (an empty text, one part).
    """
    if len(text) <= pieces:
        return tuple(text) or ("",)
    words = _WORD.findall(text)
    if len(words) < pieces or "".join(words) != text:
        return tuple(
            text[i * len(text) // pieces : (i + 1) * len(text) // pieces] for i in range(pieces)
        )
    return tuple(
        "".join(words[i * len(words) // pieces : (i + 1) * len(words) // pieces])
        for i in range(pieces)
    )
