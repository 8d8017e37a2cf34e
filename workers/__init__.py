"""Switchboard workers: the provider adapters, the worker runtime and the scheduler.

Nothing here imports `broker`."""
