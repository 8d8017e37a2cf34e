"""The Azure OpenAI fake, proven by the official `AzureOpenAI` client."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from workers.testing.tokens import count_tokens

from .conftest import API_VERSION, USER

DEPLOYMENT = "my-gpt4o-deployment"


async def test_deployment_path_api_version_and_key_are_what_the_sdk_sends(fake, azure_client):
    reply = await azure_client.chat.completions.create(model=DEPLOYMENT, messages=USER)
    request = fake.requests[-1]
    assert request.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert dict(request.query) == {"api-version": API_VERSION}
    assert request.headers["api-key"] == "az-key-123"
    assert "Authorization" not in request.headers
    assert reply.choices[0].message.content == f"This is a fake reply from {DEPLOYMENT}."
    assert reply.model == "gpt-4o-2024-11-20"
    assert reply.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    filters = reply.choices[0].model_extra["content_filter_results"]
    assert filters["hate"] == {"filtered": False, "severity": "safe"}
    assert fake.model_counts == {DEPLOYMENT: 1}


async def test_leading_prompt_filter_chunk_is_tolerated_by_the_sdk(azure_client):
    stream = await azure_client.chat.completions.create(
        model=DEPLOYMENT, messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert (chunks[0].id, chunks[0].model, chunks[0].choices) == ("", "", [])
    assert "prompt_filter_results" in chunks[0].model_extra
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"This is a fake reply from {DEPLOYMENT}."
    assert chunks[-1].usage.completion_tokens == count_tokens(text)
    assert all(c.model == "gpt-4o-2024-11-20" for c in chunks[1:])


async def test_tool_call_stream_through_azure(azure_client):
    stream = await azure_client.chat.completions.create(
        model=f"{DEPLOYMENT}~tools=1", messages=USER, stream=True
    )
    arguments = ""
    async for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                arguments += delta.function.arguments or ""
    assert arguments == '{"query":"Capital of France?","call":0}'


async def test_429_has_a_string_code_and_both_retry_headers(azure_client):
    with pytest.raises(openai.RateLimitError) as caught:
        await azure_client.chat.completions.create(
            model=f"{DEPLOYMENT}~status=429~retry_after=6", messages=USER
        )
    assert caught.value.code == "429"
    assert f"API version {API_VERSION}" in caught.value.message
    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("6", "6000")


async def test_content_filter_400_carries_innererror(azure_client):
    with pytest.raises(openai.BadRequestError) as caught:
        await azure_client.chat.completions.create(
            model=f"{DEPLOYMENT}~status=content_filter", messages=USER
        )
    assert caught.value.code == "content_filter"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"


@pytest.mark.parametrize(
    ("status", "exception", "code"),
    [
        ("401", openai.AuthenticationError, "401"),
        ("403", openai.PermissionDeniedError, "PermissionDenied"),
        ("404", openai.NotFoundError, "DeploymentNotFound"),
        ("500", openai.InternalServerError, "InternalServerError"),
        ("503", openai.InternalServerError, "ServiceUnavailable"),
        ("context_window", openai.BadRequestError, "context_length_exceeded"),
    ],
)
async def test_error_status_uses_azure_wording(azure_client, status, exception, code):
    with pytest.raises(exception) as caught:
        await azure_client.chat.completions.create(
            model=f"{DEPLOYMENT}~status={status}", messages=USER
        )
    assert caught.value.code == code


async def test_embeddings_through_a_deployment(fake, azure_client):
    reply = await azure_client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert len(reply.data[0].embedding) == 1536
    assert fake.requests[-1].path == "/openai/deployments/text-embedding-3-small/embeddings"


async def test_fail_first_counts_per_deployment(fake, azure_client):
    model = f"{DEPLOYMENT}~status=500~fail_first=1"
    with pytest.raises(openai.InternalServerError):
        await azure_client.chat.completions.create(model=model, messages=USER)
    assert (await azure_client.chat.completions.create(model=model, messages=USER)).choices


@pytest.mark.parametrize(
    ("query", "headers", "status", "code"),
    [
        ("", {"api-key": "k"}, 404, "404"),
        ("?api-version=latest", {"api-key": "k"}, 400, "BadRequest"),
        (f"?api-version={API_VERSION}", {}, 401, "401"),
        (f"?api-version={API_VERSION}", {"Authorization": "Bearer entra-token"}, 200, None),
    ],
)
async def test_api_version_and_key_are_checked(fake, query, headers, status, code):
    url = f"{fake.base_url}/openai/deployments/{DEPLOYMENT}/chat/completions{query}"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"messages": USER}, headers=headers) as response:
            body = await response.json()
    assert response.status == status
    assert body.get("error", {}).get("code") == code
