"""Amazon Bedrock as a fake: Converse (JSON) and ConverseStream (AWS event-stream frames).

    POST /model/{modelId}/converse           POST /model/{modelId}/converse-stream
    POST /model/{modelId}/invoke             (Titan text embeddings: bedrock_invoke;
                                              Claude's Messages API: bedrock_claude)
    POST /model/{modelId}/invoke-with-response-stream, /count-tokens   (Claude: bedrock_claude)

The model id in the path (URL-encoded by clients: `:` is `%3A`) is the model name the
scenario is read from, with the Bedrock-only directives of `bedrock_errors`. Requests must be
signed (SigV4, checked by `bedrock_auth`) or carry a Bedrock API key, and pass the checks
Bedrock makes before running a model (`bedrock_request`). The answer is the shared plan
rendered by `bedrock_reply`; failures are Bedrock's exceptions, over HTTP or as a stream
exception frame.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from workers.testing import bedrock_claude, bedrock_invoke, bedrock_sts
from workers.testing.bedrock_auth import check_auth
from workers.testing.bedrock_errors import (
    BedrockScenario,
    parse_bedrock_scenario,
    request_id,
    scenario_failure,
    stream_exception_payload,
    validation_error,
)
from workers.testing.bedrock_frames import CONTENT_TYPE, exception_frame
from workers.testing.bedrock_reply import StreamFrames, decide, render_converse, render_stream
from workers.testing.bedrock_request import ConverseInput, RequestInvalid, read_request
from workers.testing.responses import json_response
from workers.testing.scenario import ScenarioError
from workers.testing.state import ClientWatch, FakeState, record_request
from workers.testing.streaming import send_events, wait_forever


def routes(state: FakeState) -> list[web.RouteDef]:
    async def converse(request: web.Request) -> web.StreamResponse:
        return await _answer(request, state, stream=False)

    async def converse_stream(request: web.Request) -> web.StreamResponse:
        return await _answer(request, state, stream=True)

    # `.+`: an ARN model id holds `/` (sent as %2F); the fixed suffix ends the match.
    return [
        web.post("/model/{model_id:.+}/converse", converse),
        web.post("/model/{model_id:.+}/converse-stream", converse_stream),
        *bedrock_invoke.routes(state),  # InvokeModel, for Titan text embeddings and Claude
        *bedrock_claude.routes(state),  # Claude's streams and token counts
        *bedrock_sts.routes(state),  # AssumeRole, for deployments that name a role
    ]


async def _answer(request: web.Request, state: FakeState, *, stream: bool) -> web.StreamResponse:
    body = await record_request(request, state)
    denied = check_auth(request, body, state)
    if denied is not None:
        return denied
    name = request.match_info["model_id"]
    try:
        bedrock = parse_bedrock_scenario(name)
        converse = read_request(body)
    except ScenarioError as exc:
        return validation_error(f"fake upstream: {exc}")
    except RequestInvalid as exc:
        return validation_error(str(exc))
    is_failing = bedrock.scenario.fails(state.count_model(name))
    with ClientWatch(state, request.path, name) as watch:
        if is_failing and bedrock.scenario.hang:
            await wait_forever()
        if is_failing and bedrock.scenario.status is not None:
            return scenario_failure(bedrock)
        if stream:
            return await _stream(request, watch, bedrock, converse, is_failing)
        latency_s = state.timing.latency_for(bedrock.scenario)
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        rendered = render_converse(decide(bedrock, converse))
        return json_response(rendered, headers={"x-amzn-RequestId": request_id()})


async def _stream(
    request: web.Request,
    watch: ClientWatch,
    bedrock: BedrockScenario,
    converse: ConverseInput,
    is_failing: bool,
) -> web.StreamResponse:
    frames, cut = _frames(render_stream(decide(bedrock, converse)), bedrock, is_failing)
    timing = watch.state.timing
    return await send_events(
        request,
        watch,
        frames,
        headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id()},
        ttft_s=timing.ttft_for(bedrock.scenario),
        chunk_delay_s=timing.chunk_delay_for(bedrock.scenario),
        cut_connection=cut,
    )


def _frames(
    rendered: StreamFrames, bedrock: BedrockScenario, is_failing: bool
) -> tuple[list[bytes], bool]:
    """Every frame to send, and whether to cut the connection after the last one."""
    scenario = bedrock.scenario
    error_after = scenario.stream_error_after if is_failing else None
    cut_after = scenario.disconnect_after if is_failing else None
    limits = [n for n in (error_after, cut_after) if n is not None]
    stop_at = min(limits) if limits else None
    frames = list(rendered.opening)
    for step in rendered.steps[:stop_at]:
        frames.extend(step)
    if stop_at is None:
        frames.extend(rendered.closing)
        return frames, False
    if stop_at == error_after:
        payload = stream_exception_payload(bedrock.exception_type)
        frames.append(exception_frame(bedrock.exception_type, payload))
        return frames, False
    return frames, True
