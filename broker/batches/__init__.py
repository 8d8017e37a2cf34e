"""Batches (/v1/batches, issue #20): records, input checks, the runner that queues each
line on the batch lane, and the output files."""
