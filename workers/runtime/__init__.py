"""The worker runtime: a process that consumes request entries from the lanes, runs each
through the router and an adapter, writes its reply records and acknowledges it.

- `process`: the process's lifecycle (open, run, drain, close)
- `options`: what the runtime reads of switchboard_settings (RuntimeOptions.from_settings)
- `worker`: the consume loop, the cancellation listener, the drain; its loops supervised
- `claims`: renew our entries, reclaim dead workers' entries, dead-letter poison ones
- `heartbeats`: the worker's liveness and self-description, read by front doors
- `jobs`: one request a worker holds, and how its records are written
- `execute`: runs one job to its final record
- `worker_metrics`: the process's Prometheus metrics and their endpoint
"""
