"""Tenancy on the request path (issue #17): the Redis mirror of keys, teams, users and
budgets, admission in one script (limits, leases, budget reservations and the XADD), the
settlement of a finished request's cost, and the spend ledger written to the database."""
