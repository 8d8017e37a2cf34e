"""`import switchboard` is the SDK, and importing it loads none of what only the service
needs: aiohttp's server side, a Redis client, the config loader (issue #14, item 1). A
Router given a Redis loads the client then."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import switchboard
from switchboard import Router, acompletion, aembedding, completion, completion_cost, embedding
loaded = sorted(
    name for name in sys.modules
    if name in ("redis", "aiohttp.web", "broker", "broker.config", "yaml")
    or name.startswith(("redis.", "aiohttp.web_", "broker."))
)
print(json.dumps({"loaded": loaded, "public": sorted(switchboard.__all__)}))
"""

ROUTER_WITH_REDIS = """
import json, sys
from switchboard import Router
router = Router([], redis_url="redis://127.0.0.1:1/0")
import asyncio
async def main():
    try:
        await router.acompletion("missing", [{"role": "user", "content": "hi"}])
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "redis": "redis" in sys.modules}))
    await router.aclose()
asyncio.run(main())
"""


def run(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_switchboard_loads_no_server_no_redis_and_no_config_loader() -> None:
    found = run(PROBE)
    assert found["loaded"] == []
    for name in ("completion", "acompletion", "Router", "completion_cost", "embedding"):
        assert name in found["public"]  # type: ignore[operator]


def test_a_router_given_a_redis_loads_the_client_when_it_first_routes() -> None:
    found = run(ROUTER_WITH_REDIS)
    assert found == {"error": "ModelNotFound", "redis": True}
