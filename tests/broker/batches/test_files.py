"""/v1/files through the official openai SDK: upload streamed to the directory store,
list, retrieve, content, delete; another key's file is a 404; the size cap is a 413."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from broker.config.loader import Config
from tests.broker.harness import RunningFrontDoor, make_config, start_front_door
from workers.testing.server import FakeUpstream

KEY_A = "sk-key-a-0123456789"
KEY_B = "sk-key-b-0123456789"


def files_config(fake: FakeUpstream, namespace: str, storage: Path, **settings: object) -> Config:
    extra = {"files": f"{{storage_dir: '{storage}', max_upload_bytes: 4096}}", **settings}
    config = make_config(fake.base_url + "/v1", namespace, settings=extra)
    return config


@pytest.fixture
async def door(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> AsyncIterator[RunningFrontDoor]:
    text_keys = "[{alias: a, key: " + KEY_A + "}, {alias: b, key: " + KEY_B + "}]"
    config = files_config(fake, namespace, tmp_path / "files", api_keys=text_keys)
    running = await start_front_door(config)
    yield running
    await running.stop()


class Clients:
    """SDK clients for a front door, closed at the end of the test."""

    def __init__(self, door: RunningFrontDoor) -> None:
        self.door = door
        self.made: list[AsyncOpenAI] = []

    def __call__(self, door: RunningFrontDoor, key: str) -> AsyncOpenAI:
        made = AsyncOpenAI(base_url=door.url + "/v1", api_key=key, max_retries=0)
        self.made.append(made)
        return made


@pytest.fixture
async def client(door: RunningFrontDoor) -> AsyncIterator[Clients]:
    clients = Clients(door)
    yield clients
    for made in clients.made:
        await made.close()


async def test_upload_list_retrieve_content_and_delete_through_the_sdk(
    door: RunningFrontDoor, tmp_path: Path, client: Clients
) -> None:
    sdk = client(door, KEY_A)
    data = b'{"custom_id": "a", "method": "POST"}\n' * 20
    uploaded = await sdk.files.create(file=("input.jsonl", data), purpose="batch")
    assert uploaded.id.startswith("file-")
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose) == (
        len(data),
        "input.jsonl",
        "batch",
    )
    assert (tmp_path / "files" / uploaded.id).read_bytes() == data

    listed = await sdk.files.list()
    assert [f.id for f in listed.data] == [uploaded.id]
    assert (await sdk.files.retrieve(uploaded.id)).bytes == len(data)
    assert (await sdk.files.content(uploaded.id)).content == data

    deleted = await sdk.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted) == (uploaded.id, True)
    with pytest.raises(openai.NotFoundError):
        await sdk.files.retrieve(uploaded.id)
    assert not (tmp_path / "files" / uploaded.id).exists()


async def test_another_keys_file_is_not_found(door: RunningFrontDoor, client: Clients) -> None:
    mine = await client(door, KEY_A).files.create(file=("x.jsonl", b"{}\n"), purpose="batch")
    other = client(door, KEY_B)
    for call in (other.files.retrieve, other.files.content, other.files.delete):
        with pytest.raises(openai.NotFoundError) as raised:
            await call(mine.id)
        assert raised.value.body["type"] == "not_found_error"  # type: ignore[index]
    assert (await other.files.list()).data == []
    assert (await client(door, KEY_A).files.retrieve(mine.id)).id == mine.id


async def test_an_upload_past_the_cap_is_413_and_leaves_nothing(
    door: RunningFrontDoor, tmp_path: Path, client: Clients
) -> None:
    sdk = client(door, KEY_A)
    with pytest.raises(openai.APIStatusError) as raised:
        await sdk.files.create(file=("big.jsonl", b"x" * 10_000), purpose="batch")
    assert raised.value.status_code == 413
    assert list((tmp_path / "files").glob("*")) == []
    assert (await sdk.files.list()).data == []


async def test_bad_uploads_are_openai_errors(door: RunningFrontDoor) -> None:
    headers = {"Authorization": f"Bearer {KEY_A}"}
    async with aiohttp.ClientSession() as session:
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("purpose", "batch")
        async with session.post(door.url + "/v1/files", data=form, headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["error"]["param"] == "file"
        form = aiohttp.FormData()
        form.add_field("purpose", "nonsense")
        form.add_field("file", b"{}\n", filename="a.jsonl")
        async with session.post(door.url + "/v1/files", data=form, headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["error"]["param"] == "purpose"
        async with session.post(door.url + "/v1/files", json={}, headers=headers) as response:
            assert response.status == 415
        async with session.get(door.url + "/v1/files/file-nope", headers=headers) as response:
            assert response.status == 404
            assert (await response.json())["error"]["type"] == "not_found_error"
        async with session.get(door.url + "/v1/files") as response:
            assert response.status == 401
