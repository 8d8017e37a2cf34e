"""What runs around every call (issue #19): callbacks, kept off the request path.

- `events`: `CallEvent`, what one finished call was, and the LiteLLM-shaped `kwargs` a
  callback receives (messages redacted when message logging is off)
- `custom_logger`: `CustomLogger`, the base class with LiteLLM's hook names
- `dispatch`: `CallbackDispatcher`, the bounded queue and the one task that delivers events
- `registry`: callback names and import paths resolved into callables
- `builtin`: the built-in callbacks that need no extra package (`jsonl`, `webhook`)
- `hook_metrics`: the delivery metrics (events delivered, failed, dropped; queue depth)
- `service`: the worker's side: finished requests' records turned into events
"""
