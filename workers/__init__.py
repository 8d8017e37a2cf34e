"""Switchboard workers: the provider adapters, the worker runtime and the scheduler.

Nothing here imports `broker`."""

from workers import redis_without_otel

# First, before any module of ours imports redis-py (see the module).
redis_without_otel.install()
