"""What may reach a log line: one filter, on every handler the command line configures, masks
secrets in the formatted message, the traceback and the stack (issue #13, item 3).

A record is masked after its arguments are merged into the message, so a secret is caught
whether it came as the format string, an argument, a header mapping's repr or an exception's
text. Three kinds of secret are masked:

- **Configured secrets**, verbatim: every `Secret` in the loaded config (master key, API
  keys, metrics key, upstream keys, Redis URL), whatever their shape.
- **Credential headers and fields**: the value after `Authorization`, `Proxy-Authorization`,
  `x-api-key`, `api-key` (also `api_key`, `x-goog-api-key`), `Cookie` and `Set-Cookie`,
  written as a header line (`name: value`), a mapping entry (`'name': 'value'`) or a field
  (`name=value`), up to the end of the line or the closing quote; and the token after
  `Bearer ` or `Basic `.
- **Key-shaped tokens**: `sk-...` (OpenAI, Anthropic `sk-ant-...`, most gateways),
  `AIza...` (Google), `AKIA...`/`ASIA...` (AWS access key ids), JWTs (`eyJ...`), 32 or more
  hex digits (Azure keys), and 40 or more characters of a base64/url-safe alphabet (AWS
  secret keys, GitHub tokens), except Switchboard's own request ids (`req_<hex>`), which
  logs need. UUIDs, stream entry ids, worker ids and provider message ids are shorter or
  separated and stay readable. A password in a URL (`redis://user:password@host`) is
  masked too.

A masked value reads `***`; a header keeps its name (`Authorization: ***`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import msgspec

MASK = "***"
# Shorter configured values would mask common words; the config already refuses such keys.
MIN_SECRET_CHARS = 8

_HEADER_NAMES = (
    r"(?:proxy-)?authorization|(?:x-(?:goog-)?)?api[-_]?key|(?:set-)?cookie|access[-_]?token"
)
# `name: value`, `'name': 'value'`, `"name"="value"`, `name=value`: keep the name and the
# separator (with its quotes), mask the value up to the closing quote or the end of the line
# (in a bytes repr that is the closing quote: a stray `\r` inside a key masks through).
_HEADER = re.compile(
    rf"""(?ix)
    (?P<name>["']?\b(?:{_HEADER_NAMES})\b["']?\s*[:=]\s*)
    (?P<quote>["']?)
    (?P<value>[^"'\r\n]+)
    """
)
_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")
_TOKEN = re.compile(
    r"""(?x)
    (?<![\w-])
    (?:
        sk-[\w-]{8,}                                # OpenAI, Anthropic (sk-ant-), LiteLLM
      | AIza[\w-]{30,}                              # Google API keys
      | (?:AKIA|ASIA)[0-9A-Z]{16}                   # AWS access key ids
      | eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*             # JWTs
      | [0-9a-fA-F]{32,}                            # hex keys (Azure)
      | (?!req_)[A-Za-z0-9+/_-]{40,}={0,2}          # long base64 / url-safe tokens
    )
    (?![\w-])
    """
)


# Key-shaped strings after a prefix that says what they are; the prefix stays, so a reader
# knows what was masked. Partial echoes count: a provider's "sk-ups***666" still holds
# fragments of the operator's key.
_PREFIXED = re.compile(
    r"(?P<keep>"
    r"\b(?:sk|pk|rk)-(?:ant-|proj-|live-|test-)?"  # OpenAI, Anthropic, Stripe-style keys
    r"|\bAIza"  # Google API keys
    r"|\b(?:AKIA|ASIA)"  # AWS access key ids
    r"|\b(?:gsk|xai|pplx|fw|hf|ghp|gho|xox[abps]|org)[-_]"  # Groq, xAI, ..., organisations
    r"|(?i:\b(?:auth[-_]?token|secret|password)[\"']?\s*[:=]\s*[\"']?)"
    r"|(?i:[?&](?:key|token|sig|signature)=)"  # credentials in a URL's query
    r")[A-Za-z0-9_\-*.+/=~]{3,}"
)


def mask_secrets(text: str, *, keep_prefix: bool = False) -> str:
    """`text` with every credential header value, scheme token, URL password and key-shaped
    string masked (configured secrets aside: `Redactor` adds those). `keep_prefix` keeps a
    key's prefix (`sk-live-***`) so a reader of an upstream's message knows what was there;
    otherwise a whole key reads `***` and only partial echoes (`sk-ups***666`) keep theirs."""
    text = _HEADER.sub(lambda m: m["name"] + m["quote"] + MASK, text)
    text = _SCHEME.sub(lambda m: f"{m[1]} {MASK}", text)
    text = _URL_PASSWORD.sub(lambda m: m[1] + MASK + "@", text)
    if keep_prefix:
        text = _PREFIXED.sub(lambda m: m["keep"] + MASK, text)
        return _TOKEN.sub(MASK, text)
    text = _TOKEN.sub(MASK, text)
    return _PREFIXED.sub(lambda m: m["keep"] + MASK if "*" in m[0] else m[0], text)


class Redactor(logging.Filter):
    """Masks secrets in every record it sees; never drops one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Mask these exact values too (the loaded config's secrets), longest first."""
        found = {s for s in secrets if len(s) >= MIN_SECRET_CHARS} | set(self._secrets)
        self._secrets = sorted(found, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return mask_secrets(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string still gets logged, masked
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            # Render the traceback now, masked, and drop the live exception so that no
            # formatter downstream renders it again unmasked.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Put `redactor` on every handler of `logger` (the root by default): a handler's filter
    sees records propagated from every child logger, aiohttp's and redis' included."""
    for handler in (logger or logging.getLogger()).handlers:
        if redactor not in handler.filters:
            handler.addFilter(redactor)


def secrets_in(value: object, secret_type: type[str]) -> list[str]:
    """Every `secret_type` string inside a tree of Structs, mappings and sequences (a loaded
    config), so that a new secret field is masked without being listed here."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, secret_type):
            found.append(str(item))
        elif isinstance(item, msgspec.Struct):
            stack.extend(getattr(item, name) for name in item.__struct_fields__)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return found
