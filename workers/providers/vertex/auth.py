"""How a Vertex AI request proves who sends it: a Google OAuth2 access token, minted from the
deployment's `vertex_credentials` (a service account's JSON key, as a file path or the JSON
itself; or an `authorized_user` file) or, without them, Application Default Credentials.

google-auth (the optional `vertex` extra) does the OAuth: it signs the service account's JWT,
exchanges it at the credentials' `token_uri` for an access token, and says when the token is
due for a refresh (3 min 45 s before it expires). Getting a token is network I/O through
google-auth's blocking `requests` transport, so it runs in a worker thread, one refresh at a
time per credential; a valid token is read without leaving the event loop. One token source
serves every adapter (and the front door's count_tokens) of the same credentials.

The token endpoint is the operator's (it is in their credentials), but it is still held to
what the upstream session does: https only (http only to a loopback address, for a local
fake), no proxy from the environment, no redirects, a bounded wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import threading
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from workers.errors import AuthenticationFailed, InternalError
from workers.providers.vertex.endpoint import PROVIDER

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
EXTRA = "pip install 'switchboard-gateway[vertex]' (from a clone: pip install -e '.[vertex]')"
TOKEN_TIMEOUT_S = 30.0
# The credential kinds a deployment may name: they mint tokens at a `token_uri` and nothing
# else. Others (external_account runs executables or reads files it names) go through ADC,
# where the operator's environment chose them.
_KINDS = frozenset({"service_account", "authorized_user"})


def import_google_auth() -> ModuleType:
    """google.auth with the submodules used here, or an error naming the extra."""
    try:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests
        import requests
    except ImportError as exc:
        raise InternalError(
            f"Vertex AI deployments get Google access tokens through google-auth, which is "
            f"not installed: {EXTRA}",
            provider=PROVIDER,
        ) from exc
    del requests
    return google.auth


class GoogleToken:
    """One credential's access token: minted on first use, refreshed when due."""

    def __init__(self, credentials: str | None) -> None:
        self._source = credentials
        self._credentials: Any = None
        self._lock = threading.Lock()

    async def bearer(self) -> str:
        credentials = self._credentials
        if credentials is None or not credentials.valid:
            return await asyncio.to_thread(self._refreshed)
        return str(credentials.token)

    def _refreshed(self) -> str:
        google_auth = import_google_auth()
        with self._lock:  # one refresh at a time; the others then find the new token
            try:
                if self._credentials is None:
                    self._credentials = self._load()
                if not self._credentials.valid:
                    with _token_transport() as request:
                        self._credentials.refresh(request)
            except (google_auth.exceptions.GoogleAuthError, ValueError) as exc:
                refused = isinstance(exc, google_auth.exceptions.RefreshError)
                raise AuthenticationFailed(
                    f"could not get a Google access token for Vertex AI: {_reason(exc)}",
                    provider=PROVIDER,
                    # The token endpoint refused the credentials (its reply is a 400 or 401).
                    upstream_status=401 if refused else None,
                ) from None
            return str(self._credentials.token)

    def _load(self) -> Any:
        google_auth = import_google_auth()
        if not self._source:
            credentials, _ = google_auth.default(scopes=[SCOPE])
            return credentials
        info = read_credentials(self._source)
        # The loader of that one kind (google-auth's advice for configured credentials).
        from google.oauth2 import credentials as user_credentials
        from google.oauth2 import service_account

        loader: Any = (
            service_account.Credentials.from_service_account_info
            if info["type"] == "service_account"
            else user_credentials.Credentials.from_authorized_user_info
        )
        return loader(info, scopes=[SCOPE])


def read_credentials(source: str) -> dict[str, Any]:
    """`vertex_credentials` (JSON text, or a path to it) as a checked credentials dict."""
    text = source
    if not source.lstrip().startswith("{"):
        try:
            with open(source, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise AuthenticationFailed(
                f"vertex_credentials: cannot read the credentials file ({exc.strerror})",
                provider=PROVIDER,
            ) from None
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise AuthenticationFailed(
            "vertex_credentials is not a JSON object (a service account key)", provider=PROVIDER
        )
    kind = info.get("type")
    if kind not in _KINDS:
        raise AuthenticationFailed(
            f"vertex_credentials of type {str(kind)[:40]!r}: name a service_account or "
            "authorized_user key, or leave vertex_credentials out to use Application Default "
            "Credentials",
            provider=PROVIDER,
        )
    check_token_uri(info.get("token_uri"))
    return info


def check_token_uri(uri: Any) -> None:
    """https, or http to a loopback address (a local fake); absent: google-auth's default."""
    if uri is None:
        return
    parts = urlsplit(str(uri))
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return
    raise AuthenticationFailed(
        "vertex_credentials: token_uri must be an https URL", provider=PROVIDER
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _token_transport() -> Iterator[Any]:
    """google-auth's transport on a session that follows no redirect and no proxy from the
    environment, within TOKEN_TIMEOUT_S; closed after the one refresh it serves (an hour
    apart, so no connection is worth keeping)."""
    import google.auth.transport.requests
    import requests

    with requests.Session() as session:
        session.trust_env = False
        session.max_redirects = 0
        transport = google.auth.transport.requests.Request(session)
        yield functools.partial(_bounded, transport)


def _bounded(
    transport: Any,
    url: str,
    method: str = "GET",
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> Any:
    return transport(
        url,
        method=method,
        body=body,
        headers=headers,
        timeout=min(timeout or TOKEN_TIMEOUT_S, TOKEN_TIMEOUT_S),
        **kwargs,
    )


def _reason(exc: Exception) -> str:
    """The first line of google-auth's message: the token endpoint's error code and text
    (`invalid_grant: Invalid JWT Signature.`), never a token or a key. A ValueError is a key
    that would not load; its text is the key library's, so only its kind is said."""
    if isinstance(exc, ValueError) and not isinstance(
        exc, import_google_auth().exceptions.GoogleAuthError
    ):
        return "the credentials' private key could not be loaded"
    first = exc.args[0] if exc.args else type(exc).__name__
    return str(first).splitlines()[0][:200]


@functools.lru_cache(maxsize=64)
def token_for(credentials: str | None) -> GoogleToken:
    """One token source per distinct credentials: every adapter of a deployment (the SDK
    builds one per call) and the front door share its token and its refreshes."""
    return GoogleToken(credentials)


class VertexSigner:
    """The `Signer` (workers/providers/bedrock/signing.py) a Vertex request is sent with:
    `Authorization: Bearer <access token>`."""

    def __init__(self, token: GoogleToken) -> None:
        self._token = token

    async def headers(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Authorization": f"Bearer {await self._token.bearer()}"}


def signer_for(options: Mapping[str, Any]) -> VertexSigner:
    credentials = options.get("vertex_credentials")
    return VertexSigner(token_for(str(credentials) if credentials else None))
