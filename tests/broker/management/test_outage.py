"""Issue #17: a database outage fails management calls with a clear 503, leaves the request
path alone, and ends by itself when the database is back. The outage is a private PostgreSQL
server of this test's own (tests/db_servers.py): the machine's is shared and never stopped."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from tests.broker.harness import make_config, service
from tests.broker.management.conftest import MASTER, UPSTREAM, Api, general
from tests.db_servers import PrivatePostgres, postgres_binaries
from workers.testing.server import FakeUpstream


@pytest.fixture
def private_server() -> Iterator[PrivatePostgres]:
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    server = PrivatePostgres().init()
    server.start()
    yield server
    server.remove()


@pytest.mark.timeout(180)
async def test_management_is_a_503_while_the_database_is_down_and_inference_goes_on(
    private_server: PrivatePostgres, fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace, general=general(private_server.url))
    chat = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {MASTER}"}
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        api = Api(http, door.url)
        created = await api.ok("POST", "/key/generate", {"key_alias": "before"})

        private_server.stop()
        status, answer = await api.post("/key/generate", {"key_alias": "during"})
        assert status == 503, answer
        assert answer["error"]["code"] == "database_unavailable"
        assert "database is unavailable" in answer["error"]["message"]
        status, _ = await api.get("/key/info", as_key=created["key"])
        assert status == 503
        async with http.post(
            door.url + "/v1/chat/completions", json=chat, headers=headers
        ) as response:
            assert response.status == 200  # the request path does not wait on the database

        private_server.start()
        await api.ok("POST", "/key/generate", {"key_alias": "after"})
        listed = await api.ok("GET", "/key/list", return_full_object="true")
        assert sorted(k["key_alias"] for k in listed["keys"]) == ["after", "before"]


async def test_without_a_database_management_says_how_to_configure_one(namespace: str) -> None:
    config = make_config(UPSTREAM, namespace, general=general(None))
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        status, answer = await Api(http, door.url).get("/key/list")
    assert status == 503
    assert answer["error"]["code"] == "database_not_configured"
    assert "DATABASE_URL" in answer["error"]["message"]
