"""Fake upstream servers that speak each provider's real wire format (tests and benchmarks)."""
