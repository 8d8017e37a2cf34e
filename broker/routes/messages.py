"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API as a front door
(issue #18). Validated once (the Anthropic shape, then its chat translation under the same
request caps as chat), admitted, enqueued and relayed exactly as chat is; the worker
translates the body and writes the reply as Anthropic events (workers/ingress/). Errors
answer in Anthropic's shape (`broker.errors.anthropic_errors`)."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import orjson
from aiohttp import web
from yarl import URL

from broker.auth import Caller
from broker.body import decode, json_object, read_json_body
from broker.errors import JSON, anthropic_errors
from broker.frontdoor import FrontDoor
from broker.relay import Relay
from broker.routes.admitted import admitted_relay, request_options
from broker.routes.gemini_count import count_at_gemini
from broker.routes.hooked import run_hooked
from broker.routes.keys import FRONT_DOOR
from broker.routes.messages_vertex_count import count_at_vertex
from broker.routes.passthrough import PASSTHROUGH_HTTP
from workers.deployment import Deployment
from workers.envelopes import INGRESS_MESSAGES, KIND_CHAT
from workers.errors import APIConnectionError, InvalidRequest, ProviderError
from workers.ingress.messages_request import decode_messages_request, to_chat_body
from workers.params import GATEWAY_FIELDS, GatewayOptions, unsupported
from workers.providers.anthropic import API_VERSION
from workers.providers.base import NativeRequest
from workers.providers.bedrock import invoke as bedrock_invoke
from workers.providers.bedrock.errors import http_error as bedrock_http_error
from workers.providers.passthrough import upstream_for
from workers.providers.vertex import endpoint as vertex_endpoint
from workers.providers.vertex import takes_messages as vertex_takes_messages
from workers.routing.reliability import every_fallback_group
from workers.routing.scope import may_reach
from workers.tokens import estimate_prompt_tokens
from workers.validation import decode_request, validate_chat_request
from workers.wire import ChatCompletionRequest, chat_request_from_dict

BETA_HEADER = "anthropic-beta"
COUNT_TIMEOUT_S = 30.0
# The longest anthropic-beta value forwarded (a list of a few dozen feature names fits).
MAX_BETA_CHARS = 2048
# Tells a count_tokens caller the number is the gateway's estimate (workers/tokens.py), not
# a provider's tokenizer.
COUNT_HEADER = "x-switchboard-token-count"


def speaks_messages(deployment: Deployment) -> bool:
    """Whether /v1/messages reaches `deployment` in Anthropic's own API (the body and
    anthropic-beta as sent): Anthropic, Claude on Bedrock through InvokeModel, and Claude
    on Vertex AI through rawPredict."""
    return (
        deployment.provider == "anthropic"
        or bedrock_invoke.takes_messages(deployment)
        or vertex_takes_messages(deployment)
    )


def group_drops(front: FrontDoor, group: str, options: GatewayOptions) -> bool:
    """Whether the body says drop_params, or every deployment of `group` does (in its
    litellm_params or litellm_settings): clients such as Claude Code and Codex cannot add
    drop_params to their bodies. The worker decides the same (runtime/execute.py)."""
    if options.drop_params:
        return True
    deployments = front.config.deployments.get(group, ())
    return bool(deployments) and all(d.drop_params for d in deployments)


def _chat_request(front: FrontDoor, body: bytes, *, drop: bool) -> ChatCompletionRequest:
    """The body's chat translation, checked as a chat request is."""
    raw = json_object(body)
    for name in GATEWAY_FIELDS:
        raw.pop(name, None)
    chat_body = decode_request(lambda b: to_chat_body(b, drop_params=drop), raw)
    chat = decode_request(chat_request_from_dict, chat_body)
    validate_chat_request(chat, front.limits)
    return chat


@anthropic_errors
async def messages(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    body = await read_json_body(request, front.settings.max_body_bytes)
    parsed = decode(decode_messages_request, body)
    if parsed.max_tokens is None:
        raise InvalidRequest("`max_tokens` is required", param="max_tokens", code="invalid_value")
    options = request_options(front, body)
    group = front.resolve_group(parsed.model, caller)
    _chat_request(front, body, drop=group_drops(front, group, options))
    headers = _forwarded(request, front, caller, group, options)

    async def admit(checked_body: bytes) -> Relay:
        return await admitted_relay(
            request,
            front,
            caller,
            kind=KIND_CHAT,
            group=group,
            body=checked_body,
            stream=bool(parsed.stream),
            options=options,
            ingress=INGRESS_MESSAGES,
            headers=headers,
            call_type="messages",
            model=parsed.model,
            max_tokens=parsed.max_tokens,
            end_user=_end_user(parsed.metadata),
        )

    return await run_hooked(
        request,
        front,
        caller,
        kind="messages",
        body=body,
        group=group,
        admit=admit,
        stream=bool(parsed.stream),
        vary=headers,
    )


def _end_user(metadata: dict[str, Any] | None) -> str | None:
    """Anthropic's end user is `metadata.user_id`."""
    user = (metadata or {}).get("user_id")
    return user if isinstance(user, str) and user else None


async def count_at_anthropic(
    request: web.Request, deployment: Deployment, body: bytes
) -> web.Response:
    """Anthropic's /v1/messages/count_tokens for the client's body (the model replaced),
    through the front door's pass-through session; its answer as it comes."""
    raw = _client_body(body)
    raw["model"] = deployment.model
    upstream = upstream_for(deployment)
    headers = {
        "content-type": JSON,
        "anthropic-version": request.headers.get("anthropic-version", API_VERSION),
        **upstream.headers,
    }
    if request.headers.get(BETA_HEADER):
        headers[BETA_HEADER] = request.headers[BETA_HEADER][:MAX_BETA_CHARS]
    session = request.app[PASSTHROUGH_HTTP].session
    url = upstream.url("v1/messages/count_tokens", {})
    timeout = aiohttp.ClientTimeout(total=COUNT_TIMEOUT_S)
    try:
        async with session.post(
            url, data=orjson.dumps(raw), headers=headers, timeout=timeout, allow_redirects=False
        ) as reply:
            answer = await reply.read()
            status = reply.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise APIConnectionError(
            f"Anthropic's token counter could not be reached ({type(exc).__name__})"
        ) from None
    return web.Response(
        body=answer, status=status, content_type=JSON, headers={COUNT_HEADER: "provider"}
    )


def _client_body(body: bytes) -> dict[str, Any]:
    raw = json_object(body)
    for name in GATEWAY_FIELDS:
        raw.pop(name, None)
    return raw


async def count_at_bedrock(
    request: web.Request, deployment: Deployment, body: bytes
) -> web.Response:
    """Bedrock's CountTokens for the InvokeModel body this request would send to a Claude
    deployment, signed as the deployment's calls are; `{"input_tokens": n}` as Anthropic
    answers, and Bedrock's errors in Anthropic's shape."""
    beta = request.headers.get(BETA_HEADER, "")[:MAX_BETA_CHARS]
    native = NativeRequest(
        provider="anthropic", body=_client_body(body), headers={BETA_HEADER: beta}
    )
    payload = bedrock_invoke.count_tokens_body(native)
    upstream = upstream_for(deployment)
    url = upstream.url(bedrock_invoke.model_path(deployment.model) + "/count-tokens", {})
    headers = {"content-type": JSON, **upstream.headers}
    if upstream.signer is not None:
        headers = await upstream.signer.headers(url, payload, headers)
    session = request.app[PASSTHROUGH_HTTP].session
    timeout = aiohttp.ClientTimeout(total=COUNT_TIMEOUT_S)
    try:
        async with session.post(
            URL(url, encoded=True),  # the path exactly as signed
            data=payload,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        ) as reply:
            answer, status, reply_headers = await reply.read(), reply.status, reply.headers
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise APIConnectionError(
            f"Bedrock's token counter could not be reached ({type(exc).__name__})"
        ) from None
    if status >= 400:
        raise bedrock_http_error(status, reply_headers, answer, model=deployment.model)
    tokens = _input_tokens(answer)
    return web.Response(
        body=orjson.dumps({"input_tokens": tokens}),
        content_type=JSON,
        headers={COUNT_HEADER: "provider"},
    )


def _input_tokens(answer: bytes) -> int:
    try:
        tokens = orjson.loads(answer).get("inputTokens")
    except (orjson.JSONDecodeError, AttributeError):
        tokens = None
    if not isinstance(tokens, int):
        raise ProviderError("Bedrock's token counter sent no inputTokens", provider="bedrock")
    return tokens


def _forwarded(
    request: web.Request, front: FrontDoor, caller: Caller, group: str, options: GatewayOptions
) -> dict[str, str] | None:
    """The headers an Anthropic deployment is sent as they came: `anthropic-beta`. Beta
    features need Anthropic's own API, and a translated deployment cannot carry them, so a
    request any other deployment may serve — one of the group's, or of a group it may fall
    back to — is refused by name unless drop_params: never a silent drop."""
    beta = request.headers.get(BETA_HEADER, "").strip()
    if not beta:
        return None
    scope = front.scope_for(caller)
    fallbacks = every_fallback_group(group, front.config.router_settings)
    groups = [group] + [g for g in fallbacks if may_reach(scope, g)]
    deployments = [d for g in groups for d in front.config.deployments.get(g, ())]
    others = [d for d in deployments if not speaks_messages(d)]
    if others:
        # Dropped when the body or every one of those deployments says drop_params (Claude
        # Code sends betas on every request and cannot add drop_params to its bodies); the
        # header still goes to the Anthropic deployments, and the others' translation
        # ignores it.
        names = ", ".join(sorted({d.provider for d in others}))
        where = (
            f"model group `{group}`"
            if len(groups) == 1
            else (f"model group `{group}` or its fallbacks ({', '.join(groups[1:])})")
        )
        unsupported(
            BETA_HEADER,
            f"{where} ({names})",
            "beta features need Anthropic's own API (Anthropic, or Claude on Bedrock or Vertex)",
            drop_params=bool(options.drop_params) or all(d.drop_params for d in others),
        )
    return {BETA_HEADER: beta[:MAX_BETA_CHARS]}


@anthropic_errors
async def count_tokens(request: web.Request) -> web.StreamResponse:
    """The provider's own counter when the group has one: Anthropic's, Bedrock's CountTokens
    or Vertex's count-tokens for Claude there (every deployment taking the Messages API as
    is), or Gemini's
    (broker/routes/gemini_count.py); otherwise the gateway's estimate. A header says which."""
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    body = await read_json_body(request, front.settings.max_body_bytes)
    parsed = decode(decode_messages_request, body)
    options = request_options(front, body)
    group = front.resolve_group(parsed.model, caller)
    chat = _chat_request(front, body, drop=group_drops(front, group, options))
    deployments = front.config.deployments.get(group, ())
    if deployments and all(speaks_messages(d) for d in deployments):
        if deployments[0].provider == "anthropic":
            return await count_at_anthropic(request, deployments[0], body)
        if deployments[0].provider == vertex_endpoint.PROVIDER:
            return await count_at_vertex(request, deployments[0], body)
        return await count_at_bedrock(request, deployments[0], body)
    if deployments and all(d.provider == "gemini" for d in deployments):
        drop = group_drops(front, group, options)
        return await count_at_gemini(request, front, deployments[0], body, drop=drop)
    tokens = estimate_prompt_tokens(chat)
    if chat.tools:
        tokens += len(msgspec.json.encode(chat.tools)) // 4
    return web.Response(
        body=orjson.dumps({"input_tokens": tokens}),
        content_type=JSON,
        headers={COUNT_HEADER: "estimate"},
    )
