"""How a Bedrock request proves who sends it: SigV4 with AWS credentials, or a Bedrock API key.

SigV4 uses botocore (the optional `bedrock` extra) for both halves: the standard credential
chain (explicit keys, environment, shared config and credentials files / profiles, SSO,
container and instance roles, STS AssumeRole) and `SigV4Auth`. botocore is imported only
when a deployment needs it, never at package import. Resolving or refreshing credentials can
touch the network (STS, instance metadata), so it runs in a worker thread; signing itself is
pure computation and runs inline.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol, cast

from workers.errors import AuthenticationFailed, InternalError, InvalidRequest
from workers.providers.bedrock.errors import PROVIDER

SIGNING_NAME = "bedrock"  # the scope's service is `bedrock`, not the `bedrock-runtime` host
DEFAULT_SESSION_NAME = "switchboard"
EXTRA = "pip install 'switchboard-gateway[bedrock]' (from a clone: pip install -e '.[bedrock]')"
# bedrock-runtime.us-east-1.amazonaws.com, bedrock-runtime-fips.us-gov-west-1.amazonaws.com,
# vpce-...bedrock-runtime.eu-west-1.vpce.amazonaws.com
_ENDPOINT_REGION = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.")
_CREDENTIAL_OPTIONS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_profile_name",
    "aws_role_name",
    "aws_session_name",
    "aws_region_name",
)


class Signer(Protocol):
    async def headers(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus the ones that authenticate this exact request."""
        ...


class BearerSigner:
    """A Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`): `Authorization: Bearer`, no SigV4."""

    def __init__(self, api_key: str) -> None:
        self._authorization = f"Bearer {api_key}"

    async def headers(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Authorization": self._authorization}


class SigV4Signer:
    def __init__(self, credentials: AwsCredentials, region: str) -> None:
        self._credentials = credentials
        self._region = region
        self._botocore = import_botocore()

    async def headers(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        frozen = await self._credentials.frozen()
        # `url` carries the encoded path (`%3A` for `:`) exactly as it goes on the wire;
        # SigV4Auth builds the canonical URI from it, as botocore's own client does.
        request = self._botocore.awsrequest.AWSRequest(
            method="POST", url=url, data=body, headers=headers
        )
        self._botocore.auth.SigV4Auth(frozen, SIGNING_NAME, self._region).add_auth(request)
        return dict(request.headers.items())


def import_botocore() -> ModuleType:
    """botocore with the submodules we use, or an error naming the extra that provides it."""
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import botocore.exceptions
        import botocore.session
    except ImportError as exc:
        raise InternalError(
            "Bedrock deployments sign requests with AWS SigV4 through botocore, which is not "
            f"installed: {EXTRA} (or give the deployment a Bedrock API key as api_key)",
            provider=PROVIDER,
        ) from exc
    return cast(ModuleType, botocore)


class AwsCredentials:
    """A deployment's AWS credentials: resolved on first use, refreshed before they expire.

    botocore's RefreshableCredentials refresh themselves inside `get_frozen_credentials`
    (15 minutes ahead of expiry, blocking from 10 minutes ahead); we make that call in a
    thread whenever a refresh is due, so the event loop never waits on STS.
    """

    def __init__(self, options: Mapping[str, str], session: Any) -> None:
        self._options = options
        self._session = session
        self._credentials: Any = None
        self._lock = threading.Lock()

    async def frozen(self) -> Any:
        credentials = self._credentials
        if credentials is None or _refresh_due(credentials):
            return await asyncio.to_thread(self._load_frozen)
        return credentials.get_frozen_credentials()

    def _load_frozen(self) -> Any:
        botocore = import_botocore()
        try:
            with self._lock:
                if self._credentials is None:
                    self._credentials = self._resolve()
            return self._credentials.get_frozen_credentials()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            # ClientError: STS refused AssumeRole (no trust, expired source credentials).
            raise AuthenticationFailed(
                f"could not get AWS credentials for Bedrock: {exc}", provider=PROVIDER
            ) from exc

    def _resolve(self) -> Any:
        base = self._base_credentials()
        role_arn = self._options.get("aws_role_name")
        return self._assume_role(base, role_arn) if role_arn else base

    def _base_credentials(self) -> Any:
        botocore = import_botocore()
        key_id = self._options.get("aws_access_key_id")
        secret = self._options.get("aws_secret_access_key")
        if key_id or secret:
            if not (key_id and secret):
                raise AuthenticationFailed(
                    "aws_access_key_id and aws_secret_access_key must be given together",
                    provider=PROVIDER,
                )
            token = self._options.get("aws_session_token")
            return botocore.credentials.Credentials(key_id, secret, token, method="explicit")
        credentials = self._session.get_credentials()
        if credentials is None:
            raise AuthenticationFailed(
                "no AWS credentials for Bedrock: set aws_access_key_id/aws_secret_access_key, "
                "aws_profile_name or aws_role_name, the AWS_* environment variables, or give a "
                "Bedrock API key (api_key / AWS_BEARER_TOKEN_BEDROCK)",
                provider=PROVIDER,
            )
        return credentials

    def _assume_role(self, source: Any, role_arn: str) -> Any:
        botocore = import_botocore()
        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=functools.partial(
                self._session.create_client, region_name=self._options.get("aws_region_name")
            ),
            source_credentials=source,
            role_arn=role_arn,
            extra_args={
                "RoleSessionName": self._options.get("aws_session_name") or DEFAULT_SESSION_NAME
            },
        )
        return botocore.credentials.DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )


def _refresh_due(credentials: Any) -> bool:
    refresh_needed = getattr(credentials, "refresh_needed", None)
    return bool(refresh_needed()) if refresh_needed is not None else False


def make_signer(options: Mapping[str, Any], api_key: str | None, region: str) -> Signer:
    if api_key:
        return BearerSigner(api_key)
    return SigV4Signer(credentials_for(_credential_key(options)), region)


def _credential_key(options: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((name, str(options[name])) for name in _CREDENTIAL_OPTIONS if options.get(name))


@functools.lru_cache(maxsize=64)
def credentials_for(key: tuple[tuple[str, str], ...]) -> AwsCredentials:
    """One credential source per distinct set of options: the SDK builds an adapter per
    call, and re-running the chain (or AssumeRole) on every call would be slow and costly."""
    options = dict(key)
    return AwsCredentials(options, _session(options.get("aws_profile_name")))


def _session(profile: str | None) -> Any:
    botocore = import_botocore()
    return botocore.session.Session(profile=profile)


def resolve_region(options: Mapping[str, Any], endpoint: str | None) -> str:
    """aws_region_name, else the region in a Bedrock endpoint URL, else the AWS config
    (AWS_DEFAULT_REGION, or the profile's `region`)."""
    region = options.get("aws_region_name")
    if region:
        return str(region)
    match = _ENDPOINT_REGION.search(endpoint or "")
    if match:
        return match.group(1)
    botocore = import_botocore()
    try:
        configured = _session(options.get("aws_profile_name")).get_config_variable("region")
    except botocore.exceptions.BotoCoreError as exc:
        raise InvalidRequest(
            f"cannot read the AWS configuration for Bedrock: {exc}",
            param="aws_region_name",
            provider=PROVIDER,
        ) from exc
    if not configured:
        raise InvalidRequest(
            "Bedrock needs a region: set aws_region_name, AWS_DEFAULT_REGION or a profile region",
            param="aws_region_name",
            provider=PROVIDER,
        )
    return str(configured)
