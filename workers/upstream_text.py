"""What a client may learn of an upstream failure, and how its details reach the log
(issue #13, item 7).

An upstream's error text is written for the upstream's customer, the operator: it may name
part of the operator's key ("Incorrect API key provided: sk-ups***666"), its organisation,
an internal host, or echo a whole proxy page. So at the service's edge (the worker, before
an error becomes a reply record):

- an upstream 401/403 is the gateway's credentials failing, not the caller's: a 502
  `api_error` / `upstream_auth_failed` naming the deployment, never the provider's words;
- a 4xx about the request itself (400, 404, 408, 413, 422, 429: "max_tokens is too large",
  a context-window or content-policy refusal, a rate limit) keeps the provider's message,
  with key-shaped strings masked and cut to `CLIENT_TEXT_CHARS`: the caller needs it to fix
  the request;
- everything else (5xx, an unreadable reply, a connection failure) is described in the
  gateway's words: the deployment, the provider and the upstream status, nothing more.

The provider's own words go to the worker's log, masked. The in-process SDK raises the
adapters' errors unchanged: its caller holds the keys.
"""

from __future__ import annotations

import copy
import logging

from workers.deployment import Deployment
from workers.errors import (
    APIConnectionError,
    AuthenticationFailed,
    PermissionDenied,
    ProviderError,
    SwitchboardError,
    UpstreamResponseTooLarge,
)
from workers.log_redaction import mask_secrets

log = logging.getLogger("switchboard.upstream")

CLIENT_TEXT_CHARS = 300
LOG_TEXT_CHARS = 1000


def excerpt(text: str, limit: int) -> str:
    """Masked, on one line, at most `limit` characters."""
    flat = " ".join(mask_secrets(text, keep_prefix=True).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def for_client(
    error: SwitchboardError, deployment: Deployment | None, request_id: str
) -> SwitchboardError:
    """The error a client gets for `error`; logs the upstream's words when they are held
    back or cut. Errors the gateway words itself pass unchanged."""
    where = _deployment_words(error, deployment)
    if isinstance(error, AuthenticationFailed | PermissionDenied):
        _log(error, where, request_id)
        return ProviderError(
            f"{where} rejected the gateway's credentials; the operator must check its api_key"
            if error.upstream_status is not None
            else f"{where} has no credentials; the operator must set its api_key",
            code="upstream_auth_failed",
            provider=error.provider,
            model=error.model,
            upstream_status=error.upstream_status,
        )
    if isinstance(error, ProviderError):
        _log(error, where, request_id)
        return _reworded(error, _failure_words(error, where))
    status = error.upstream_status
    if status is None:
        return error  # the gateway's own words
    if status >= 500:
        _log(error, where, request_id)
        return _reworded(error, f"{where} failed with HTTP {status}")
    text = excerpt(error.message, CLIENT_TEXT_CHARS)
    if text != error.message:
        _log(error, where, request_id)
    return _reworded(error, text)


def _deployment_words(error: SwitchboardError, deployment: Deployment | None) -> str:
    if deployment is not None:
        return f"deployment `{deployment.label}` ({deployment.provider})"
    return f"the {error.provider or 'upstream'} deployment"


def _failure_words(error: ProviderError, where: str) -> str:
    if error.code == "worker_lost" or isinstance(error, UpstreamResponseTooLarge):
        return error.message  # the gateway's own words (workers/runtime/worker.py, workers/http.py)
    if isinstance(error, APIConnectionError):
        return f"{where} could not be reached"
    if error.upstream_status is not None:
        return f"{where} failed with HTTP {error.upstream_status}"
    return f"{where} sent a reply the gateway could not use"


def _reworded(error: SwitchboardError, message: str) -> SwitchboardError:
    if message == error.message:
        return error
    reworded = copy.copy(error)
    reworded.message = message
    reworded.args = (message,)
    return reworded


def _log(error: SwitchboardError, where: str, request_id: str) -> None:
    log.warning(
        "request %s: %s failed (%s, upstream HTTP %s): %s",
        request_id,
        where,
        type(error).__name__,
        error.upstream_status,
        excerpt(error.message, LOG_TEXT_CHARS),
    )
