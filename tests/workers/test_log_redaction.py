"""The log filter every Switchboard process puts on its handlers masks secrets in the
message, its arguments, tracebacks and stacks, and leaves what logs need (request ids,
worker ids, entry ids, model names) readable."""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Iterator

import msgspec
import pytest

from workers.deployment import Secret
from workers.log_redaction import MASK, Redactor, install, secrets_in

KEY = "sk-proj-Zq8Xw2Lk5Vb7Nn1Mm3Pp9Rr4Tt6"


@pytest.fixture
def output() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose handler carries the filter, as `broker.launch.configure_logging` sets up."""
    stream = io.StringIO()
    logger = logging.getLogger(f"test.redaction.{uuid.uuid4().hex}")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    install(Redactor(["my configured master key!"]), logger)
    yield logger, stream
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    "text",
    [
        # aiohttp's parser error, as it logs it today (issue #13, item 3).
        f"Invalid header value char:\n\n  b'Authorization: Bearer {KEY}\\x00'\n   ^",
        f"Missing expected LF after header value:\n\n  b'x-api-key: {KEY}\\rabc'",
        f"<CIMultiDictProxy('Host': 'a', 'Authorization': 'Bearer {KEY}', 'X-Other': 'v')>",
        f"{{'api-key': '{KEY}'}}",
        f'{{"api_key": "{KEY}", "model": "gpt"}}',
        f"Cookie: session={KEY}",
        f"Proxy-Authorization: Basic {KEY}",
        f"calling with bearer {KEY} now",
        f"upstream said: Incorrect API key provided: {KEY}",
    ],
)
def test_credential_headers_and_key_shaped_tokens_are_masked(text: str) -> None:
    masked = Redactor().redact(text)
    assert KEY not in masked
    assert MASK in masked


@pytest.mark.parametrize(
    "secret",
    [
        "sk-ant-api03-" + "Ab1_" * 20,  # Anthropic
        "AIzaSyA" + "b" * 32,  # Google
        "AKIAIOSFODNN7EXAMPLE",  # AWS access key id
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # AWS secret key (40 base64 chars)
        os.urandom(16).hex(),  # Azure: 32 hex digits
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXBhcnQ",  # a JWT
    ],
)
def test_provider_key_shapes_are_masked_anywhere(secret: str) -> None:
    assert Redactor().redact(f"deployment failed with {secret}, retrying") == (
        f"deployment failed with {MASK}, retrying"
    )


def test_configured_secrets_are_masked_whatever_their_shape() -> None:
    redactor = Redactor()
    redactor.add_secrets(["open sesame 1234", "short"])
    assert redactor.redact("key=open sesame 1234 said short") == f"key={MASK} said short"


def test_url_passwords_are_masked() -> None:
    assert Redactor().redact("redis at redis://user:hunter2hunter2@redis:6379/0") == (
        f"redis at redis://user:{MASK}@redis:6379/0"
    )


def test_ids_the_logs_need_stay_readable() -> None:
    text = (
        f"request req_{os.urandom(20).hex()} entry 1712345678901-0 worker host-42-a1b2c3 "
        f"trace {uuid.uuid4()} chatcmpl-{'A' * 29} msg_01XFDUDYJgAACzvnptvVoYEL "
        "model openai/gpt-4o-mini~ttft=0.2 front door 1a2b3c4d5e6f sk-fake"
    )
    assert Redactor().redact(text) == text


def test_arguments_tracebacks_and_stacks_are_masked(
    output: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = output
    logger.warning("headers: %s", {"Authorization": f"Bearer {KEY}"})
    logger.warning("key %s", "my configured master key!")
    try:
        raise ValueError(f"bad line b'x-api-key: {KEY}\\x00'")
    except ValueError:
        logger.exception("parse failed")
    logger.warning("where %s", KEY, stack_info=True)
    text = stream.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "ValueError: bad line" in text
    assert KEY not in text
    assert "my configured master key!" not in text


def test_a_broken_format_string_is_still_logged_masked(
    output: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = output
    logger.warning("two %s %s", KEY)
    assert "two" in stream.getvalue()
    assert KEY not in stream.getvalue()


def test_every_secret_of_a_config_tree_is_found() -> None:
    class Inner(msgspec.Struct):
        key: Secret
        name: str = "visible"

    class Root(msgspec.Struct):
        master: Secret | None
        inners: list[Inner]
        by_name: dict[str, Inner]

    root = Root(
        Secret("m" * 10),
        [Inner(Secret("a" * 10))],
        {"x": Inner(Secret("b" * 10))},
    )
    assert sorted(secrets_in(root, Secret)) == ["a" * 10, "b" * 10, "m" * 10]
