"""Limits on a request body that no schema expresses, checked before anything recursive or
lossy reads it: nesting depth, and numbers that the decoders and encoders downstream cannot
hold (issue #13, item 5).

Why: msgspec raises RecursionError near 1,000 levels, orjson refuses to encode past 255 and
to decode past 1,024, orjson reads `1e400` as an error and encodes integers past 64 bits as
an error. Each of those was a 500. Here a body is refused with a 400 naming the field when
- it nests arrays and objects deeper than `MAX_DEPTH` (OpenAI's own requests need ~6);
- a number anywhere in it is not finite as a double (`1e400`), or an integer does not fit
  in 64 signed bits (`seed` is an int64 in OpenAI's API).

The front door checks the bytes it received once; the worker checks an envelope's bytes
again (another producer may have queued it); the SDK checks the Python objects it was given.
The byte check runs in C-speed passes (a regex, a translate, an accumulate), so a 10 MB body
costs a few milliseconds.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Iterator
from itertools import accumulate, islice
from typing import Any

import msgspec

from workers.errors import InvalidRequest

MAX_DEPTH = 64
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# More digits than this cannot be an int64, and Python refuses int() on > 4,300 digits.
_INT64_DIGITS = 19
# The slow path that names a refused field reads the body in pieces of this size.
_CHUNK = 1 << 16

# A JSON string, or an unterminated one up to the end (so a stray quote cannot make the
# scan quadratic). Possessive quantifiers: no backtracking.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\Z)', re.S)
# Numbers that may not fit: an exponent, or more integer digits than an int64 has. The
# lookbehind anchors a match at a number's start (not inside its fraction or exponent).
_SUSPECT_NUMBER = re.compile(
    rb"(?<![0-9.eE+-])-?(?:\d{%d,}(?:\.\d+)?(?:[eE][+-]?\d+)?|\d+(?:\.\d+)?[eE][+-]?\d+)"
    % (_INT64_DIGITS,)
)
# Opening brackets become +1 and closing ones -1 (as signed bytes); everything else goes.
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# A number's shape, for a C-speed look for the few that may overflow: digits become `d`,
# exponent marks `e`, a `+` stays, everything else is a space.
_SHAPE = bytes(
    ord("d") if 0x30 <= b <= 0x39 else ord("e") if b in b"eE" else b if b == 0x2B else 0x20
    for b in range(256)
)
_INT64_RUN = b"d" * _INT64_DIGITS
_CLOSING = bytes.maketrans(b"[{", b"]}")
_BRACKET = re.compile(rb"[\[\]{}]")

_decode_members = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def check_json_bytes(body: bytes) -> None:
    """Refuse a JSON body nested too deep or holding a number no decoder can hold.

    Malformed JSON passes (the decoder reports it), unless its brackets alone nest too deep.
    """
    # Too few brackets to nest that deep (strings included) is the common case, and so is
    # a body with no number shape that may overflow even inside its strings: then the
    # strings need not be emptied at all (issue #22: that regex was most of this check's
    # cost on every request, at the front door and again at the worker).
    is_shallow = body.count(b"[") + body.count(b"{") <= MAX_DEPTH
    if is_shallow and not _may_hold_bad_number(body):
        return
    skeleton = _STRING.sub(b'""', body)
    if not is_shallow and _max_depth(skeleton) > MAX_DEPTH:
        raise _too_deep(_deep_member(body, skeleton))
    if _first_bad_number(skeleton) is not None:
        raise _bad_number(_member_where(body, _has_bad_number))


def check_json_object(value: Any) -> None:
    """The same limits for Python objects (the SDK's arguments), before they are encoded."""
    stack: list[tuple[Any, int, str | None]] = [(value, 0, None)]
    while stack:
        item, depth, member = stack.pop()
        if isinstance(item, dict):
            children: Iterator[tuple[Any, Any]] = iter(item.items())
        elif isinstance(item, list | tuple):
            children = enumerate(item)
        else:
            if _is_bad_scalar(item):
                raise _bad_number(member)
            continue
        if depth >= MAX_DEPTH:
            raise _too_deep(member)
        for key, child in children:
            name = member if member is not None or depth else str(key)
            if isinstance(child, dict | list | tuple):
                stack.append((child, depth + 1, name))
            elif _is_bad_scalar(child):
                raise _bad_number(name)


def _max_depth(skeleton: bytes) -> int:
    """The deepest nesting of the brackets in a body whose strings are emptied."""
    steps = array("b", skeleton.translate(_BRACKETS, _NOT_BRACKETS))
    return max(accumulate(steps), default=0)


def _may_hold_bad_number(text: bytes) -> bool:
    """Whether `text` has the shape of a number that may not fit: 19+ digits or a positive
    3+ digit exponent. Emptying strings (the skeleton) only takes such shapes away, never
    makes one (an emptied string reads as `""`, which is no digit, `e` nor `+`), so a body
    without one has a skeleton without one."""
    shape = text.translate(_SHAPE)
    return b"eddd" in shape or b"e+ddd" in shape or _INT64_RUN in shape


def _first_bad_number(skeleton: bytes) -> bytes | None:
    # Only a number with 19+ digits or a positive 3+ digit exponent may not fit; most
    # bodies have none, and then no regex runs.
    if not _may_hold_bad_number(skeleton):
        return None
    for match in _SUSPECT_NUMBER.finditer(skeleton):
        token = match.group()
        if not _fits(token):
            return token
    return None


def _fits(token: bytes) -> bool:
    if b"." in token or b"e" in token or b"E" in token:
        return math.isfinite(float(token))
    digits = token.removeprefix(b"-")
    if len(digits) > _INT64_DIGITS:
        return False
    return INT64_MIN <= int(token) <= INT64_MAX


def _is_bad_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return not INT64_MIN <= value <= INT64_MAX
    return False


def _has_bad_number(raw: bytes) -> bool:
    return _first_bad_number(_STRING.sub(b'""', raw)) is not None


def _member_where(body: bytes, is_bad: Callable[[bytes], bool]) -> str | None:
    """The top-level field whose value breaks a limit (the slow path of a refusal); the
    body nests at most MAX_DEPTH deep here, so msgspec may read its members."""
    try:
        members = _decode_members(body)
    except msgspec.DecodeError:
        return None  # not an object, or malformed: the message alone must do
    for name, raw in members.items():
        if is_bad(bytes(raw)):
            return name
    return None


def _deep_member(body: bytes, skeleton: bytes) -> str | None:
    """The top-level field in which the body nests too deep: the body is cut where it goes
    one level too deep, closed, and its members read (every step C-speed, none recursive
    past MAX_DEPTH)."""
    brackets = skeleton.translate(None, _NOT_BRACKETS)
    depths = array("i", accumulate(array("b", brackets.translate(_BRACKETS))))
    first = depths.index(MAX_DEPTH + 1)  # the bracket that opens one level too many
    cut = _offset_of_bracket(skeleton, first)
    # The body's offset of that bracket: the strings before it are emptied in the skeleton.
    shortened = _STRING.sub(b'""', body, count=skeleton.count(b'""', 0, cut))
    cut += len(body) - len(shortened)
    still_open = _unclosed(brackets[:first])
    if still_open is None:
        return None
    try:
        members = _decode_members(body[:cut] + b"0" + still_open[::-1].translate(_CLOSING))
    except msgspec.DecodeError:
        return None
    return next(reversed(members), None)


def _offset_of_bracket(skeleton: bytes, index: int) -> int:
    """Where the `index`-th bracket of the skeleton is."""
    seen = 0
    for start in range(0, len(skeleton), _CHUNK):
        chunk = skeleton[start : start + _CHUNK]
        count = len(chunk.translate(None, _NOT_BRACKETS))
        if seen + count > index:
            found = next(islice(_BRACKET.finditer(chunk), index - seen, None))
            return start + found.start()
        seen += count
    raise ValueError("no such bracket")


def _unclosed(brackets: bytes) -> bytes | None:
    """The brackets left open at the end of a sequence nesting at most MAX_DEPTH deep (each
    round closes the innermost pairs); None when they do not pair up."""
    for _ in range(2 * MAX_DEPTH + 2):
        paired = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if paired == brackets:
            break
        brackets = paired
    return None if b"]" in brackets or b"}" in brackets else brackets


def _too_deep(member: str | None) -> InvalidRequest:
    where = f"`{member}` is" if member else "the request body is"
    return InvalidRequest(
        f"{where} nested more than {MAX_DEPTH} levels deep", param=member, code="invalid_value"
    )


def _bad_number(member: str | None) -> InvalidRequest:
    where = f"`{member}` holds" if member else "the request body holds"
    return InvalidRequest(
        f"{where} a number out of range: numbers must be finite and integers must fit in 64 bits",
        param=member,
        code="invalid_value",
    )
