#!/usr/bin/env python3
"""Container healthcheck: exit 0 when $SWITCHBOARD_HEALTH_URL answers 200 within 2 s."""

import os
import sys
import urllib.request

url = os.environ.get("SWITCHBOARD_HEALTH_URL", "http://127.0.0.1:4000/health/liveliness")
try:
    with urllib.request.urlopen(url, timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
