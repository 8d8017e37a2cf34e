"""Claude on Vertex AI without a network: where its URLs go, what a config may name, and which
credentials the adapter accepts (the wire itself: tests/broker/ingress/
test_messages_vertex_native.py and tests/workers/testing/test_vertex_fake.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workers.deployment import Deployment, Secret
from workers.errors import AuthenticationFailed
from workers.providers.vertex.auth import read_credentials
from workers.providers.vertex.endpoint import (
    api_root,
    config_problem,
    count_tokens_body,
    model_url,
    raw_predict_body,
)

MODEL = "claude-sonnet-4-5@20250929"


def vertex(location: str = "us-east5", **given: Any) -> Deployment:
    options = {"vertex_project": "my-project", "vertex_location": location}
    return Deployment(provider="vertex_ai", model=MODEL, options=options, **given)


@pytest.mark.parametrize(
    ("location", "root"),
    [
        ("us-east5", "https://us-east5-aiplatform.googleapis.com/v1"),
        ("global", "https://aiplatform.googleapis.com/v1"),
        ("us", "https://aiplatform.us.rep.googleapis.com/v1"),
        ("eu", "https://aiplatform.eu.rep.googleapis.com/v1"),
    ],
)
def test_the_location_names_the_host_as_anthropic_vertex_does(location: str, root: str):
    assert api_root(vertex(location)) == root
    assert model_url(vertex(location), MODEL) == (
        f"{root}/projects/my-project/locations/{location}/publishers/anthropic/models/{MODEL}"
    )


def test_an_api_base_is_the_v1_root():
    assert api_root(vertex(api_base="http://127.0.0.1:9000")) == "http://127.0.0.1:9000/v1"
    assert api_root(vertex(api_base="http://h/v1beta1/")) == "http://h/v1beta1"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"vertex_location": "us-east5"}, "vertex_project"),
        ({"vertex_project": "my-project"}, "vertex_location"),
        ({"vertex_project": "my-project", "vertex_location": "x.evil.com/"}, "vertex_location"),
        ({"vertex_project": "a/../b", "vertex_location": "us-east5"}, "vertex_project"),
    ],
)
def test_what_would_leave_vertex_is_refused(options: dict[str, str], field: str):
    deployment = Deployment(provider="vertex_ai", model=MODEL, options=options)
    problem = config_problem(deployment)
    assert problem is not None and problem[0] == field


def test_an_api_key_is_refused_not_ignored():
    problem = config_problem(vertex(api_key=Secret("sk-x")))
    assert problem is not None and problem[0] == "api_key"


def test_only_claude_is_served():
    problem = config_problem(Deployment(provider="vertex_ai", model="gemini-2.5-pro"))
    assert problem is not None and "gemini/" in problem[1]
    assert config_problem(vertex()) is None
    assert config_problem(vertex(location="global")) is None
    scoped = Deployment(
        provider="vertex_ai",
        model=MODEL,
        options={"vertex_project": "example.com:my-project", "vertex_location": "us-east5"},
    )
    assert config_problem(scoped) is None


def test_the_bodies_vertex_takes():
    body = {"model": "group", "max_tokens": 9, "messages": [], "stream": True}
    sent = raw_predict_body(body, {"temperature": 0.5, "max_tokens": 1})
    assert sent == {
        "temperature": 0.5,
        "max_tokens": 9,
        "messages": [],
        "stream": True,
        "anthropic_version": "vertex-2023-10-16",
    }
    counted = count_tokens_body({"model": "group", "messages": []}, MODEL)
    assert counted["model"] == MODEL and counted["anthropic_version"] == "vertex-2023-10-16"


def key(**fields: Any) -> dict[str, Any]:
    return {
        "type": "service_account",
        "client_email": "a@p.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
        "token_uri": "https://oauth2.googleapis.com/token",
        **fields,
    }


def test_credentials_come_as_json_or_a_path(tmp_path: Path):
    assert read_credentials(json.dumps(key()))["type"] == "service_account"
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(key()))
    assert read_credentials(str(path))["client_email"] == "a@p.iam.gserviceaccount.com"


@pytest.mark.parametrize(
    ("source", "words"),
    [
        (json.dumps(key(type="external_account")), "external_account"),
        (json.dumps(key(token_uri="http://token.example.com/token")), "https"),
        (json.dumps(key(token_uri="file:///etc/passwd")), "https"),
        ("{not json", "not a JSON object"),
        ("/nonexistent/sa.json", "cannot read"),
    ],
)
def test_what_credentials_may_not_be(source: str, words: str):
    with pytest.raises(AuthenticationFailed) as refused:
        read_credentials(source)
    assert words in refused.value.message
    assert "PRIVATE KEY" not in refused.value.message


def test_a_loopback_token_uri_is_allowed_for_a_local_fake():
    assert read_credentials(json.dumps(key(token_uri="http://127.0.0.1:9/token")))
    assert read_credentials(json.dumps(key(token_uri="http://localhost:9/token")))
