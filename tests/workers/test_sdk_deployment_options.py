"""One list of provider option keys serves the config and the SDK (issue #14, item 3): a key
that `litellm_params` keeps as the deployment's is the deployment's in an SDK call too, and
never reaches the request body."""

from __future__ import annotations

from typing import Any

from workers.sdk import calls as sdk
from workers.settings.models import DEPLOYMENT_OPTION_KEYS
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "Say hello"}]


async def test_the_sdk_takes_the_configs_deployment_options_out_of_the_body(
    fake: FakeUpstream,
) -> None:
    options: dict[str, Any] = {name: "x" for name in DEPLOYMENT_OPTION_KEYS}
    base = fake.base_url + "/v1"
    await sdk.acompletion("openai/gpt-4o-mini", HELLO, api_base=base, api_key="sk-test", **options)
    assert not set(fake.requests[-1].json) & set(DEPLOYMENT_OPTION_KEYS)
