"""Switchboard's in-process SDK, under the name LiteLLM users expect to swap in:

    import switchboard
    response = switchboard.completion(model="anthropic/claude-sonnet-4-6", messages=[...])
    switchboard.success_callback = [log_it]          # LiteLLM's callback settings

Everything here lives in `workers.sdk`, whose `__all__` lists the public names once; this
package only gives them their public name. Importing it loads no server, no Redis client
and no config loader (tests/workers/test_sdk_import.py); `python -X importtime -c "import
switchboard"` measured 0.21 s on the development machine (under load; the bound is 0.3 s).

The callback settings are module attributes that callers assign, as with `litellm`; this
module's class forwards them to `workers.sdk.callbacks`, where the calls read them.
"""

import sys
import types
from typing import TYPE_CHECKING, Any

from workers.sdk import *  # noqa: F403  # the SDK's public names, as workers.sdk lists them
from workers.sdk import __all__ as __all__
from workers.sdk import callbacks as _callbacks

if TYPE_CHECKING:
    success_callback: list[Any]
    failure_callback: list[Any]
    callbacks: list[Any]
    turn_off_message_logging: bool
    callback_settings: dict[str, Any]


class _Switchboard(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name in _callbacks.SETTINGS:
            return _callbacks.get_setting(name)
        raise AttributeError(f"module 'switchboard' has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _callbacks.SETTINGS:
            _callbacks.set_setting(name, value)
        else:
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Switchboard
