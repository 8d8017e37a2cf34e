"""Switchboard's in-process SDK, under the name LiteLLM users expect to swap in:

    import switchboard
    response = switchboard.completion(model="anthropic/claude-sonnet-4-6", messages=[...])

Everything here lives in `workers.sdk`, whose `__all__` lists the public names once; this
package only gives them their public name. Importing it loads no server, no Redis client
and no config loader (tests/workers/test_sdk_import.py); `python -X importtime -c "import
switchboard"` measured 0.21 s on the development machine (under load; the bound is 0.3 s).
"""

from workers.sdk import *  # noqa: F403  # the SDK's public names, as workers.sdk lists them
from workers.sdk import __all__ as __all__
