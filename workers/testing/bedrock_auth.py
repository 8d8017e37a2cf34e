"""Request authentication as Bedrock checks it: SigV4 or a Bedrock API key (bearer token).

Every SigV4 `Authorization` header is checked for shape: `AWS4-HMAC-SHA256
Credential=<key id>/<yyyymmdd>/<region>/bedrock/aws4_request, SignedHeaders=..., Signature=<64
hex>`, with a scope date matching X-Amz-Date and host/x-amz-date signed. For the key ids in
`KNOWN_SECRETS` the fake also recomputes the signature (an implementation of the SigV4 spec
independent of botocore), so a test can prove a signer right, not just well-formed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote

from aiohttp import web

from workers.testing.bedrock_errors import error_response
from workers.testing.state import FakeState

SIGNING_NAME = "bedrock"
# The example key pair of AWS's SigV4 documentation.
KNOWN_SECRETS = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)


def check_auth(request: web.Request, body: bytes, state: FakeState) -> web.Response | None:
    """None when the request may proceed, else the 403 Bedrock would send."""
    authorization = request.headers.get("Authorization", "")
    if not authorization:
        return error_response(
            403, "MissingAuthenticationTokenException", "Missing Authentication Token"
        )
    if authorization.startswith("Bearer "):
        return None if state.accepts_key(authorization[7:]) else _unrecognized()
    match = _SIGV4.fullmatch(authorization)
    if match is None:
        return _incomplete(f"Authorization header is not a SigV4 header: {authorization[:40]}")
    problem = _scope_problem(request, match)
    if problem is not None:
        return problem
    if state.api_key is not None and not state.accepts_key(match["key"]):
        return _unrecognized()
    secret = KNOWN_SECRETS.get(match["key"])
    if secret is not None and not hmac.compare_digest(
        expected_signature(request, body, match, secret), match["signature"]
    ):
        return error_response(403, "InvalidSignatureException", _MISMATCH)
    return None


def _scope_problem(request: web.Request, match: re.Match[str]) -> web.Response | None:
    if match["service"] != SIGNING_NAME:
        return error_response(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SIGNING_NAME}'. ",
        )
    amz_date = request.headers.get("X-Amz-Date", "")
    if not amz_date.startswith(match["date"]):
        return _incomplete(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            "from HTTP"
        )
    signed = match["signed"].split(";")
    required = {"host", "x-amz-date"}
    if "X-Amz-Security-Token" in request.headers:
        required.add("x-amz-security-token")
    missing = sorted(required - set(signed))
    absent = [name for name in signed if name not in request.headers]
    if missing or absent:
        return _incomplete(f"Signed headers are incomplete: missing {missing or absent}")
    return None


def expected_signature(request: web.Request, body: bytes, match: re.Match[str], secret: str) -> str:
    """SigV4 from the spec: canonical request -> string to sign -> HMAC chain."""
    signed = match["signed"].split(";")
    canonical = "\n".join(
        (
            request.method,
            # Non-S3 services encode each path segment twice: the path as sent, encoded again.
            quote(request.raw_path.partition("?")[0] or "/", safe="/~"),
            _canonical_query(request.raw_path.partition("?")[2]),
            "".join(f"{name}:{_trim(request.headers.getall(name))}\n" for name in signed),
            ";".join(signed),
            request.headers.get("X-Amz-Content-SHA256") or hashlib.sha256(body).hexdigest(),
        )
    )
    scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
    to_sign = "\n".join(
        (
            "AWS4-HMAC-SHA256",
            request.headers["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
    )
    key = ("AWS4" + secret).encode()
    for part in (match["date"], match["region"], match["service"], "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _canonical_query(query: str) -> str:
    pairs = sorted(tuple(pair.partition("=")[::2]) for pair in query.split("&") if pair)
    return "&".join(f"{name}={value}" for name, value in pairs)


def _trim(values: list[str]) -> str:
    return ",".join(" ".join(value.split()) for value in values)


def _unrecognized() -> web.Response:
    return error_response(
        403, "UnrecognizedClientException", "The security token included in the request is invalid."
    )


def _incomplete(message: str) -> web.Response:
    return error_response(403, "IncompleteSignatureException", message)
