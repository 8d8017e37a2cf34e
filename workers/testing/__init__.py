"""Fake upstream servers that speak each provider's real wire format (tests and benchmarks).

    async with FakeUpstream() as fake:                      # inside a running loop
        client = openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="sk-test")
        await client.chat.completions.create(model="gpt-4o~status=429~retry_after=2", ...)

The model name picks the behaviour (see `scenario`); `python -m workers.testing` serves the
same fakes as a process for benchmarks.
"""

from workers.testing.scenario import Scenario, ScenarioError, parse_scenario
from workers.testing.server import PROVIDERS, FakeUpstream, ThreadedFakeUpstream
from workers.testing.state import Disconnect, FakeState, RecordedRequest, Timing

__all__ = [
    "PROVIDERS",
    "Disconnect",
    "FakeState",
    "FakeUpstream",
    "RecordedRequest",
    "Scenario",
    "ScenarioError",
    "ThreadedFakeUpstream",
    "Timing",
    "parse_scenario",
]
