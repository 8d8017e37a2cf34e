"""The worker runtime: a process that consumes request entries from the lanes, runs each
through the router and an adapter, writes its reply records and acknowledges it.

- `process`: the process's lifecycle (open, run, drain, close)
- `worker`: the consume loop, claims (renew, reclaim, dead-letter), heartbeats, cancellations
- `jobs`: one request a worker holds, and how its records are written
- `execute`: runs one job to its final record
- `worker_metrics`: the process's Prometheus metrics and their endpoint
"""
