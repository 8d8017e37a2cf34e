"""Per-team callbacks (issue #19), as LiteLLM's `litellm_settings.default_team_settings`:
a request made with a key of team X goes to the global callbacks and to team X's, and a
built-in both name (`langfuse`) goes to the team's own project (its keys) instead of the
global one. Through two front doors, a worker, the database and the callbacks' consumer."""

from __future__ import annotations

import base64
import contextlib
import os
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from broker.hooks import FRONT_HOOKS
from tests.broker import callback_targets
from tests.broker.harness import make_config, service
from tests.broker.management.conftest import general
from tests.broker.otlp_receiver import OtlpReceiver
from tests.broker.tenancy.conftest import PRICED, Gateway
from tests.db_fixtures import *  # noqa: F403  (database_url, database: both backends)
from workers.testing.server import FakeUpstream


@pytest.fixture(autouse=True)
def clean_targets() -> Iterator[None]:
    callback_targets.proxy_handler_instance.events.clear()
    callback_targets.team_a_instance.events.clear()
    yield


def _basic(public: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()


def _teams(receiver_url: str, *, cache: bool) -> str:
    """Global callbacks and Langfuse project, and team A's own of each (team B has none)."""
    return textwrap.dedent(
        f"""\
        litellm_settings:
          cache: {"true" if cache else "false"}
          callbacks: ["tests.broker.callback_targets.proxy_handler_instance"]
          success_callback: ["langfuse"]
          default_team_settings:
            - team_id: team-a
              success_callback: ["langfuse"]
              callbacks: ["tests.broker.callback_targets.team_a_instance"]
              langfuse_public_key: pk-team-a
              langfuse_secret: sk-team-a
              langfuse_host: "{receiver_url}"
        callback_settings:
          langfuse: {{host: "{receiver_url}", public_key: pk-all, secret_key: sk-all}}
        """
    )


@contextlib.asynccontextmanager
async def teams_a_and_b(
    database_url: str, namespace: str, fake: FakeUpstream, *, cache: bool = False
) -> AsyncIterator[tuple[OtlpReceiver, Gateway, str, str]]:
    """A gateway with teams A and B (as `_teams` sets them up), a key in each, and the
    OTLP receiver standing in for Langfuse; it stops the gateway before the receiver."""
    async with OtlpReceiver() as receiver:
        config = make_config(
            fake.base_url + "/v1",
            namespace,
            general=general(database_url) + _teams(receiver.base_url, cache=cache),
            extra_models=PRICED.format(base=fake.base_url + "/v1"),
        )
        async with (
            service(config, workers=1, front_doors=1) as (doors, workers),
            aiohttp.ClientSession() as http,
        ):
            gateway = Gateway(doors, workers, http)
            await gateway.api.ok("POST", "/team/new", {"team_id": "team-a"})
            await gateway.api.ok("POST", "/team/new", {"team_id": "team-b"})
            in_a = await gateway.new_key(team_id="team-a")
            in_b = await gateway.new_key(team_id="team-b")
            yield receiver, gateway, in_a, in_b


async def test_a_teams_requests_go_to_its_callbacks_and_its_langfuse_project(
    database: object, database_url: str, namespace: str, fake: FakeUpstream
) -> None:
    async with teams_a_and_b(database_url, namespace, fake) as (receiver, gateway, in_a, in_b):
        ids = {}
        for name, key in (("a", in_a), ("b", in_b)):
            status, body, headers = await gateway.chat(key)
            assert status == 200, body
            ids[name] = headers["x-request-id"]
        for running in gateway.workers:
            assert running.worker.callback_consumer is not None
            await running.worker.callback_consumer.flush()
    # The global CustomLogger saw both, each with its team; team A's saw only its own.
    seen = {
        kw["litellm_call_id"]: kw for _, kw, _ in callback_targets.proxy_handler_instance.events
    }
    assert set(seen) == {ids["a"], ids["b"]}
    assert seen[ids["a"]]["litellm_params"]["metadata"]["user_api_key_team_id"] == "team-a"
    assert seen[ids["b"]]["litellm_params"]["metadata"]["user_api_key_team_id"] == "team-b"
    team_a = [kw["litellm_call_id"] for _, kw, _ in callback_targets.team_a_instance.events]
    assert team_a == [ids["a"]]
    # Langfuse: team A's spans with team A's keys, team B's (no project of its own) global.
    sent_with: dict[str, set[str]] = {}
    for headers, spans in receiver.batches:
        for span in spans:
            request_id = span.attributes.get("switchboard.request_id")
            if request_id is not None:
                sent_with.setdefault(str(request_id), set()).add(headers["Authorization"])
    assert sent_with[ids["a"]] == {_basic("pk-team-a", "sk-team-a")}
    assert sent_with[ids["b"]] == {_basic("pk-all", "sk-all")}


async def test_what_the_front_door_answers_itself_goes_to_the_teams_callbacks_and_project(
    database: object, database_url: str, namespace: str, fake: FakeUpstream
) -> None:
    """A cache hit and a refusal before queueing: no worker saw them, the front door made
    their spans and put their events on the stream; team A's still reach team A's."""
    async with teams_a_and_b(database_url, namespace, fake, cache=True) as (
        receiver,
        gateway,
        in_a,
        in_b,
    ):
        traces: dict[str, str] = {}

        async def call(name: str, key: str, body: dict[str, Any]) -> tuple[int, Any]:
            trace_id = os.urandom(16).hex()
            traces[trace_id] = name
            async with gateway.http.post(
                gateway.doors[0].url + "/v1/chat/completions",
                json=body,
                headers={
                    "Authorization": f"Bearer {key}",
                    "traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01",
                },
            ) as reply:
                await reply.read()
                return reply.status, reply.headers

        hello = {"model": "gpt-test", "messages": [{"role": "user", "content": "cache me"}]}
        for _ in range(50):
            status, headers = await call("a-served", in_a, hello)
            assert status == 200
            if headers["x-switchboard-cache"] == "hit":
                break
        traces[next(t for t, n in reversed(traces.items()) if n == "a-served")] = "a-hit"
        hit_id = headers["x-request-id"]
        bad = {"model": "gpt-test", "messages": "not a list"}
        assert (await call("a-refused", in_a, bad))[0] == 400
        assert (await call("b-refused", in_b, bad))[0] == 400
        await gateway.doors[0].app[FRONT_HOOKS].dispatcher.flush()  # onto the stream
        for running in gateway.workers:
            assert running.worker.callback_consumer is not None
            await running.worker.callback_consumer.flush()
        # Leaving the service flushed the front door's spans.
    # Team A's CustomLogger saw its hit and its refusal; B's refusal only the global one.
    team_a = callback_targets.team_a_instance.events
    assert [kw["litellm_call_id"] for kind, kw, _ in team_a if kw["cache_hit"]] == [hit_id]
    [refused_a] = [kw for kind, kw, _ in team_a if kind == "failure"]
    assert refused_a["litellm_params"]["metadata"]["user_api_key_team_id"] == "team-a"
    assert refused_a["exception"].http_status == 400
    every = callback_targets.proxy_handler_instance.events
    teams_refused = sorted(
        kw["litellm_params"]["metadata"]["user_api_key_team_id"]
        for kind, kw, _ in every
        if kind == "failure"
    )
    assert teams_refused == ["team-a", "team-b"]
    # The front door's spans: team A's to team A's project, team B's to the global one.
    sent_with: dict[str, set[str]] = {}
    for headers, spans in receiver.batches:
        for span in spans:
            if span.name == "POST /v1/chat/completions" and span.trace_id in traces:
                sent_with.setdefault(traces[span.trace_id], set()).add(headers["Authorization"])
    team_a_auth, everyone = _basic("pk-team-a", "sk-team-a"), _basic("pk-all", "sk-all")
    assert sent_with["a-hit"] == {team_a_auth}
    assert sent_with["a-refused"] == {team_a_auth}
    assert sent_with["b-refused"] == {everyone}
    # And the relays of team A's served requests went to its project too.
    relayed = {
        headers["Authorization"]
        for headers, spans in receiver.batches
        for span in spans
        if span.name == "switchboard.relay"
    }
    assert relayed == {team_a_auth}
