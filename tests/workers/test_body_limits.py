"""The byte check's answers, whichever of its paths decides them: a body with no number
shape that may overflow is passed without emptying its strings (issue #22), so a number
shape inside a string must still pass and one outside must still be refused."""

from __future__ import annotations

import pytest

from workers.body_limits import MAX_DEPTH, check_json_bytes
from workers.errors import InvalidRequest

PASSING = [
    b'{"model":"m","messages":[{"role":"user","content":"Say hello."}],"stream":true}',
    b'{"content":"1e400 and 12345678901234567890 are only text here"}',
    b'{"content":"' + b"[" * (MAX_DEPTH + 10) + b'"}',
    b'{"temperature":0.7,"seed":9223372036854775807,"tiny":1e-400}',
]
REFUSED = [
    (b'{"content":"text","seed":12345678901234567890}', "seed"),
    (b'{"temperature":1e400}', "temperature"),
    (b'{"x":1E+308,"y":1e309}', "y"),
    (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "a"),
]


@pytest.mark.parametrize("body", PASSING)
def test_a_body_within_the_limits_passes(body: bytes) -> None:
    check_json_bytes(body)


@pytest.mark.parametrize(("body", "param"), REFUSED)
def test_a_body_past_the_limits_is_refused_naming_the_field(body: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_json_bytes(body)
    assert refused.value.param == param
