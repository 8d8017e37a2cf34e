"""`switchboard up` sets the shared metrics directory before prometheus_client is imported
(broker/shared_metrics.py), so the CLI's module imports must not reach it."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_does_not_import_prometheus_client() -> None:
    probe = "import sys, broker.cli; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False", "broker.cli imports prometheus_client at import"
