"""SQLAlchemy and OpenTelemetry load only where they are used (issue #22's memory target):
a front door or a worker without a database, and without the `otel` callback, never imports
them. Together they were ~40 MiB of every process's resident memory.

Each check runs in a fresh interpreter, since this test process has imported everything."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("sqlalchemy", "opentelemetry", "aiosqlite", "asyncpg", "alembic")


def loaded_after(code: str) -> list[str]:
    """The heavy top-level packages in sys.modules after running `code` in a new Python."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "module",
    [
        "broker.app",  # the front door's application and every route
        "broker.cli",  # `switchboard up` / `front-door` / `worker`
        "workers.runtime.process",  # a worker process
        "workers.runtime.worker",
        "workers.hooks.consumer",  # the callbacks consumer (its otel part loads on use)
    ],
)
def test_importing_the_service_modules_loads_no_database_or_tracing_library(module: str) -> None:
    assert loaded_after(f"import {module}") == []


def test_a_gateway_without_a_database_serves_a_request_without_either() -> None:
    """A front door and a worker started with no database and no `otel` callback (the test
    harness starts them as `switchboard up` does), answering a request, with a master key:
    the static-key path of issue #22."""
    code = """
        import broker  # first, as in `switchboard` (broker.cli): before redis-py is imported

        import asyncio

        import aiohttp

        from tests.broker.harness import config_text, service
        from tests.redis_helpers import REDIS_URL, delete_namespace, new_namespace
        from broker.config.loader import load_config_text
        from redis.asyncio import Redis
        from workers.testing.server import FakeUpstream

        async def main() -> None:
            namespace = new_namespace()
            async with FakeUpstream() as fake:
                general = "general_settings:\\n  master_key: sk-m\\n"
                text = config_text(fake.base_url + "/v1", namespace, general=general)
                config = load_config_text(text)
                assert config.general_settings.database_url is None
                async with service(config) as (doors, _workers):
                    async with aiohttp.ClientSession() as http:
                        message = {"role": "user", "content": "hi"}
                        body = {"model": "gpt-test", "messages": [message]}
                        headers = {"Authorization": "Bearer sk-m"}
                        url = doors[0].url + "/v1/chat/completions"
                        async with http.post(url, json=body, headers=headers) as response:
                            assert response.status == 200, await response.text()
            redis = Redis.from_url(REDIS_URL)
            await delete_namespace(redis, namespace)
            await redis.aclose()

        asyncio.run(main())
    """
    assert loaded_after(code) == []


def test_a_traced_front_door_never_loads_opentelemetry() -> None:
    """With `otel` on, a front door keeps records of the spans it sees end and the callbacks'
    consumer makes and encodes them (workers/hooks/front_spans.py): the front door's own
    answer to a bad request, traced and put on the stream, loads no OpenTelemetry."""
    code = """
        import broker

        import asyncio

        import aiohttp

        from broker.tracing import FRONT_TRACING
        from tests.broker.harness import make_config, start_front_door
        from tests.redis_helpers import REDIS_URL, delete_namespace, new_namespace
        from redis.asyncio import Redis

        async def main() -> None:
            namespace = new_namespace()
            general = 'litellm_settings:\\n  callbacks: ["otel"]\\n'
            config = make_config("http://127.0.0.1:9/v1", namespace, general=general)
            door = await start_front_door(config)
            try:
                async with aiohttp.ClientSession() as http:
                    body = {"model": "gpt-test", "messages": "not a list"}
                    url = door.url + "/v1/chat/completions"
                    async with http.post(url, json=body) as response:
                        assert response.status == 400, await response.text()
                tracing = door.app[FRONT_TRACING]
                assert len(tracing.pending) == 1  # the refusal's span, recorded
                await tracing.flush()
                assert not tracing.pending
            finally:
                await door.stop()
            redis = Redis.from_url(REDIS_URL)
            await delete_namespace(redis, namespace)
            await redis.aclose()

        asyncio.run(main())
    """
    assert loaded_after(code) == []


def test_every_lazy_management_handler_names_a_real_handler() -> None:
    """ROUTES names its handlers by module and function, so a typo would only show on the
    first call: each is resolved here, and each module is one a database start preloads."""
    import importlib
    import inspect

    from broker.management import ROUTES
    from broker.management.state import HANDLER_MODULES

    for route in ROUTES:
        module, _, name = route.handler.__name__.partition(".")
        assert module in HANDLER_MODULES, route.path
        target = getattr(importlib.import_module(f"broker.management.{module}"), name)
        assert inspect.iscoroutinefunction(target), route.path


def test_the_demo_upstream_loads_without_the_optional_extras() -> None:
    """`switchboard up --demo` starts the fake upstream (`python -m workers.testing`) on a
    plain `pip install -e .`: nothing it imports may need an extra (cryptography comes with
    `vertex`, for the Vertex fake's service accounts only)."""
    probe = (
        "import sys; import workers.testing.server; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'google'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
