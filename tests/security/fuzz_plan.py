"""The fuzz test's scenario: the service it runs (models, keys, limits) and the requests it
sends, generated in a process of their own.

Why a process: hypothesis mixes constants it finds in the loaded modules of the code under
test into what it draws, so the same seed gives other cases when more modules are loaded (the
whole suite versus one test). A fresh `python -m tests.security.fuzz_plan` loads the same
modules every time, so CI and a laptop send the same requests.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from broker.openapi import build_document
from tests.security import raw_http
from tests.security.fuzz_cases import Case, Target, collect, plan
from workers.testing.media import PIXEL_PATH, PIXEL_PNG_BASE64

# Stands for the fake upstream's address in generated requests (its port changes per run).
FAKE = "http://fake.invalid"
GENERATE_TIMEOUT_S = 300
ROOT = Path(__file__).resolve().parents[2]

MASTER_KEY = "sk-fuzz-master-0123456789"
TEAM_A_KEY = "sk-fuzz-team-a-0123456789"
TEAM_B_KEY = "sk-fuzz-team-b-0123456789"
LANES = ["default", "batch"]
MAX_BODY_BYTES = 256 * 1024
REQUEST_TIMEOUT_S = 30
# Requests generated per operationId (repeats dropped; MIN_REQUESTS checks what was sent).
COUNTS = {
    "createChatCompletion": 800,
    "createChatCompletion2": 500,
    "createEmbedding": 500,
    "createEmbedding2": 300,
    "createMessage": 300,
    "createResponse": 300,
    "resumeStream": 400,
    "off-route": 200,
    "default": 75,
    # Provider pass-through (issue #18): eighteen operations, each provider's deployment on
    # the fake, which answers what it serves and 404s the rest (vertex_ai: Claude's methods
    # at the Vertex deployment, Google's at the Gemini one where the path maps, any other
    # path the gateway's own 404).
    **{
        f"{method}{name.capitalize()}PassThrough": 30
        for name in ("openai", "anthropic", "gemini", "azure", "bedrock", "vertex_ai")
        for method in ("get", "post", "delete")
    },
}
GENERATED_PROBES = 150
PASSTHROUGH_DEPLOYMENTS = """\
  - model_name: azure-gpt
    litellm_params:
      model: azure/my-gpt4o
      api_base: {fake_url}
      api_key: azure-fake
      api_version: 2024-10-21
  - model_name: bedrock-converse
    litellm_params:
      model: bedrock/converse/anthropic.claude-3-5-sonnet-20241022-v2:0
      api_base: {fake_url}
      aws_access_key_id: AKIDEXAMPLE
      aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
      aws_region_name: us-east-1
"""
VERTEX_PROJECT = "switchboard-test"
VERTEX_DEPLOYMENT = """\
  - model_name: vertex-claude
    litellm_params:
      model: vertex_ai/claude-sonnet-4-5@20250929
      api_base: {fake_url}/v1
      vertex_project: {project}
      vertex_location: us-east5
      vertex_credentials: {credentials}
"""


def config_text(
    fake_url: str,
    namespace: str,
    database_url: str | None = None,
    storage_dir: str | None = None,
    vertex_credentials: str | None = None,
) -> str:
    """The fuzzed service: a deployment of every pass-through provider on the fake (Claude
    on Vertex when given `vertex_credentials`, a service account the fake's token endpoint
    trusts), so each pass-through operation is forwarded, not a provider_not_configured."""
    models = {
        "gpt": ("openai/gpt-4o-mini", fake_url + "/v1", "sk-fake"),
        "claude": ("anthropic/claude-sonnet-4-5", fake_url, "sk-ant-fake"),
        "gemini": ("gemini/gemini-2.5-flash", fake_url, "gemini-fake"),
        "embed": ("openai/text-embedding-3-small", fake_url + "/v1", "sk-fake"),
        "gemini-embed": ("gemini/gemini-embedding-001", fake_url, "gemini-fake"),
    }
    lines = ["model_list:"]
    for name, (model, api_base, api_key) in models.items():
        lines += [f"  - model_name: {name}", "    litellm_params:", f"      model: {model}"]
        lines += [f"      api_base: {api_base}", f"      api_key: {api_key}"]
    # Reached by the pass-through alone: no key's model list names them.
    lines += PASSTHROUGH_DEPLOYMENTS.format(fake_url=fake_url).splitlines()
    if vertex_credentials is not None:
        vertex = VERTEX_DEPLOYMENT.format(
            fake_url=fake_url, project=VERTEX_PROJECT, credentials=vertex_credentials
        )
        lines += vertex.splitlines()
    lines += ["router_settings:", "  num_retries: 0"]
    lines += ["general_settings:", f"  master_key: {MASTER_KEY}"]
    if database_url is not None:  # the management API's (issue #17)
        lines += [f"  database_url: {database_url}"]
    lines += ["switchboard_settings:", f"  namespace: {namespace}", f"  lanes: {LANES}"]
    lines += [f"  max_body_bytes: {MAX_BODY_BYTES}", f"  request_timeout_s: {REQUEST_TIMEOUT_S}"]
    if storage_dir is not None:  # uploads and batch outputs (issue #20)
        lines += [f"  files: {{storage_dir: '{storage_dir}', max_upload_bytes: 100000}}"]
    lines += ["  api_keys:"]
    lines += [f"    - alias: team-a\n      key: {TEAM_A_KEY}\n      models: [gpt, claude, embed]"]
    lines += [f"    - alias: team-b\n      key: {TEAM_B_KEY}\n      models: [gemini, gemini-embed]"]
    return "\n".join(lines) + "\n"


def target() -> Target:
    return Target(
        chat_models=["gpt", "claude", "gemini"],
        embedding_models=["embed", "gemini-embed"],
        keys=[MASTER_KEY, TEAM_A_KEY, TEAM_B_KEY],
        lanes=LANES,
        max_body_bytes=MAX_BODY_BYTES,
        # Every URL a worker may be made to fetch is on this machine.
        media_urls=[
            FAKE + PIXEL_PATH,
            FAKE + "/media/missing.png",
            "data:image/png;base64," + PIXEL_PNG_BASE64,
            "data:image/png;base64,!!!",
            "http://127.0.0.1:1/x.png",
            "http://localhost:1/x.png",
            "ftp://127.0.0.1/x.png",
            "file:///etc/passwd",
            "not a url",
            "",
        ],
    )


# The issue's own reproductions, always sent (hypothesis may or may not draw them).
HELLO = [{"role": "user", "content": "hi"}]
REPRODUCTIONS: list[tuple[str, str, bytes]] = [
    ("createChatCompletion", "timeout 2e16", b'{"model":"gpt","messages":%s,"timeout":2e16}'),
    ("createChatCompletion", "timeout 1e300", b'{"model":"gpt","messages":%s,"timeout":1e300}'),
    (
        "createChatCompletion",
        "num_retries 2^64",
        b'{"model":"gpt","messages":%s,"num_retries":18446744073709551616}',
    ),
    (
        "createChatCompletion",
        "metadata nested 1000 deep",
        b'{"model":"gpt","messages":%s,"metadata":{"a":' + b"[" * 1000 + b"]" * 1000 + b"}}",
    ),
    (
        "createChatCompletion",
        "unknown field nested 1000 deep",
        b'{"model":"gpt","messages":%s,"x":' + b"[" * 1000 + b"]" * 1000 + b"}",
    ),
    (
        "createChatCompletion",
        "unknown field nested 300 deep",
        b'{"model":"gpt","messages":%s,"x":' + b"[" * 300 + b"]" * 300 + b"}",
    ),
    ("createChatCompletion", "unknown field 1e400", b'{"model":"gpt","messages":%s,"x":1e400}'),
    *[
        (
            "createChatCompletion",
            f"{field} 2^64 on {model}",
            b'{"model":"%s","messages":%%s,"%s":18446744073709551616}'
            % (model.encode(), field.encode()),
        )
        for model in ("claude", "gemini")
        for field in ("max_tokens", "seed")
    ],
    (
        "createEmbedding",
        "5,000 inputs",
        b'{"model":"embed","dimensions":8,"input":[' + b",".join([b'"a"'] * 5000) + b"]}",
    ),
]


def reproductions() -> list[Case]:
    json_type = [("Authorization", f"Bearer {MASTER_KEY}"), ("Content-Type", "application/json")]
    messages = json.dumps(HELLO).encode()
    return [
        Case(
            "POST",
            "/v1/embeddings" if operation == "createEmbedding" else "/v1/chat/completions",
            json_type,
            body.replace(b"%s", messages, 1) if b"%s" in body else body,
            operation,
            [f"issue #13: {name}"],
        )
        for operation, name, body in REPRODUCTIONS
    ]


@dataclass
class Plan:
    cases: list[Case]
    probes: list[raw_http.Probe]


def generate() -> Plan:
    cases = reproductions() + plan(build_document(), target(), COUNTS)
    chat_body = json.dumps({"model": "gpt", "messages": HELLO}).encode()
    embedding_body = json.dumps({"model": "embed", "input": "hi"}).encode()
    probes = raw_http.probes(MASTER_KEY, chat_body, embedding_body)
    probes += collect(raw_http.generated_probes(MASTER_KEY, chat_body), GENERATED_PROBES)
    return Plan(cases, probes)


def load() -> Plan:
    """The plan, generated by a fresh interpreter (see the module docstring)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.security.fuzz_plan"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=GENERATE_TIMEOUT_S,
    )
    loaded = pickle.loads(done.stdout)
    assert isinstance(loaded, Plan)
    return loaded


if __name__ == "__main__":
    # Through the module's importable name, so the pickle names `fuzz_plan.Plan`, not `__main__`.
    from tests.security import fuzz_plan

    sys.stdout.buffer.write(pickle.dumps(fuzz_plan.generate()))
