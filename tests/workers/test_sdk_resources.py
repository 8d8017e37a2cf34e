"""The SDK's shared HTTP session closes itself when its loop ends (issue #16): following
the README's `acompletion` example prints no `Unclosed client session` at exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = textwrap.dedent(
    """
    import asyncio
    import switchboard
    from workers.testing.server import FakeUpstream

    async def main():
        async with FakeUpstream() as fake:
            reply = await switchboard.acompletion(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                api_base=fake.base_url + "/v1",
                api_key="sk-test",
            )
            print(reply.choices[0].message.content)

    asyncio.run(main())
    """
)


def test_asyncio_run_with_an_sdk_call_leaves_nothing_unclosed() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "This is a fake reply from gpt-4o-mini."
    assert "Unclosed" not in done.stderr and "ResourceWarning" not in done.stderr, done.stderr
