"""Google's OAuth2 token endpoint as a fake, for service accounts (RFC 7523, JWT bearer grant).

    POST /token   grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>
        -> {"access_token": "ya29.<random>", "expires_in": 3599, "token_type": "Bearer"}

The assertion is checked as Google checks it: RS256, signed by a key the account holds (the
JWT header's `kid`), `iss` the account's email, `aud` Google's token endpoint, a `scope`,
`iat`/`exp` at most an hour apart and not expired. A failure is Google's 400
`{"error": "invalid_grant", "error_description": ...}`.

A test makes an account with `service_account(token_uri)`: a fresh RSA key whose public
half the endpoint then trusts, and the JSON key file Google would hand out for it. Issued
tokens are kept per fake server (`authority(state)`), so the Vertex fake can tell its own
tokens from any other; `expires_in_s` lets a test make them short-lived.
"""

from __future__ import annotations

import base64
import secrets
import time
import weakref
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from workers.testing.responses import json_response
from workers.testing.state import FakeState, record_request

if TYPE_CHECKING:
    # cryptography comes with the `vertex` extra; the fake upstream serves `up --demo` on a
    # plain install, where only the Vertex tests' accounts would need it (imported there).
    from cryptography.hazmat.primitives.asymmetric import rsa

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MAX_LIFETIME_S = 3600
TOKEN_PATH = "/token"
# The audience every service-account assertion names, whichever URL it is posted to.
AUDIENCE = "https://oauth2.googleapis.com/token"
# kid -> (client email, public key): the accounts every fake in this process trusts.
_ACCOUNTS: dict[str, tuple[str, rsa.RSAPublicKey]] = {}
_encode = msgspec.json.Encoder().encode


class Authority:
    """What one fake server's token endpoint has issued."""

    def __init__(self) -> None:
        self.expires_in_s = 3599
        self.issued: dict[str, float] = {}  # access token -> expiry (time.time())
        self.grants = 0  # tokens issued so far

    def accepts(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        expiry = self.issued.get(token) if scheme == "Bearer" else None
        return expiry is not None and expiry > time.time()


_AUTHORITIES: weakref.WeakKeyDictionary[FakeState, Authority] = weakref.WeakKeyDictionary()


def authority(state: FakeState) -> Authority:
    found = _AUTHORITIES.get(state)
    if found is None:
        found = _AUTHORITIES[state] = Authority()
    return found


def service_account(
    token_uri: str, *, project: str = "switchboard-test", name: str = "gateway"
) -> dict[str, Any]:
    """A service account's JSON key, as Google issues it, that the fake endpoint trusts."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = secrets.token_hex(20)
    email = f"{name}@{project}.iam.gserviceaccount.com"
    _ACCOUNTS[kid] = (email, key.public_key())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": kid,
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }


def routes(state: FakeState) -> list[web.RouteDef]:
    async def token(request: web.Request) -> web.Response:
        await record_request(request, state)
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER:
            return _invalid("unsupported_grant_type", "Invalid grant_type.")
        problem = assertion_problem(str(form.get("assertion", "")))
        if problem is not None:
            return _invalid("invalid_grant", problem)
        granted = authority(state)
        access = "ya29.fake-" + secrets.token_urlsafe(24)
        granted.issued[access] = time.time() + granted.expires_in_s
        granted.grants += 1
        body = {"access_token": access, "expires_in": granted.expires_in_s, "token_type": "Bearer"}
        return json_response(_encode(body))

    return [web.post(TOKEN_PATH, token)]


def assertion_problem(assertion: str) -> str | None:
    """Google's error_description for an assertion it refuses, or None."""
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header = msgspec.json.decode(_unb64(header_b64))
        claims = msgspec.json.decode(_unb64(claims_b64))
        signature = _unb64(signature_b64)
    except (ValueError, msgspec.DecodeError):
        return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
    if header.get("alg") != "RS256" or header.get("kid") not in _ACCOUNTS:
        return "Invalid grant: account not found"
    # An account exists only where service_account() ran, so cryptography is installed.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    email, public_key = _ACCOUNTS[header["kid"]]
    try:
        signed = f"{header_b64}.{claims_b64}".encode()
        public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return "Invalid JWT Signature."
    return _claims_problem(claims, email)


def _claims_problem(claims: dict[str, Any], email: str) -> str | None:
    if claims.get("iss") != email:
        return "Invalid JWT: iss does not name the key's account"
    if claims.get("aud") != AUDIENCE:
        return f"Invalid JWT: aud must be {AUDIENCE}"
    if SCOPE not in str(claims.get("scope", "")).split():
        return "Invalid OAuth scope or ID token audience provided."
    iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
    if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > MAX_LIFETIME_S:
        return "Invalid JWT: Token must be a short-lived token (60 minutes)"
    if exp < now or iat > now + 300:
        return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
    return None


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _invalid(error: str, description: str) -> web.Response:
    return json_response(_encode({"error": error, "error_description": description}), 400)
