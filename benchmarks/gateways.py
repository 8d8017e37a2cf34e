"""What the runner measures: the fake upstream itself, Switchboard (`switchboard up`),
LiteLLM's proxy (installed from PyPI into its own venv), all reading one config.yaml, and
Portkey's open-source gateway (installed from npm into a cache folder), routed by headers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.procs import Service, pinned

# The newest release whose `proxy` extra resolves from PyPI (1.108.14+ need a
# litellm-proxy-extras build that was never published).
LITELLM_VERSION = "1.106.12"
LITELLM_VENV = Path(__file__).parent / ".litellm-venv"
ROOT = Path(__file__).resolve().parent.parent
# Portkey's gateway from npm, run as one Node.js process (`node build/start-server.js`).
PORTKEY_VERSION = "1.15.2"
PORTKEY_DIR = Path(__file__).parent / ".portkey"
PORTKEY_PACKAGE = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway"

# Model names at the upstream: the fake reads its behaviour from them.
UPSTREAM_MODEL = "gpt-4o-mini"
STREAM_CHUNKS = 20
UPSTREAM_STREAM_MODEL = f"gpt-4o-mini~chunks={STREAM_CHUNKS}"
# The soak keeps each stream open ~1 s so that thousands really are open at once.
UPSTREAM_SLOW_STREAM_MODEL = f"gpt-4o-mini~chunks={STREAM_CHUNKS}~chunk_delay=0.05"
SOAK_WORKER_CONCURRENCY = 1024
# Both gateways check it on every request (LiteLLM refuses to start without one).
MASTER_KEY = "sk-bench-5f0c9d3e8a7b41c2a6e9d0f1b2c3d4e5"
# The name suffixes of Switchboard targets in issue #22's "everything on" configuration, and
# in the same without its `otel` callback (what issue #19's "callbacks on vs off" compares).
EVERYTHING_ON = "-on"
ON_WITHOUT_CALLBACKS = "-on-no-otel"
LABELS = {
    "": ", everything off",
    EVERYTHING_ON: ", everything on",
    ON_WITHOUT_CALLBACKS: ", everything on but the otel callback",
}


def has_database_key(name: str) -> bool:
    """Whether a target runs with a database virtual key (created once it is up)."""
    return name.endswith((EVERYTHING_ON, ON_WITHOUT_CALLBACKS))


def write_config(path: Path, upstream_url: str) -> Path:
    """One LiteLLM config.yaml for every gateway (Switchboard reads the same format)."""

    def deployment(name: str, model: str) -> dict[str, Any]:
        return {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{model}",
                "api_base": f"{upstream_url}/v1",
                "api_key": "sk-bench",
            },
        }

    config = {
        "model_list": [
            deployment("bench", UPSTREAM_MODEL),
            deployment("bench-stream", UPSTREAM_STREAM_MODEL),
            deployment("bench-slow-stream", UPSTREAM_SLOW_STREAM_MODEL),
        ],
        # Logging and telemetry off, no database: LiteLLM's fastest documented setup.
        "litellm_settings": {"set_verbose": False, "telemetry": False},
        "general_settings": {"master_key": MASTER_KEY},
        # Read by Switchboard only: enough worker slots for the 2,000-stream soak.
        "switchboard_settings": {"worker_concurrency": SOAK_WORKER_CONCURRENCY},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Target:
    """One system under test and how to reach it."""

    name: str  # e.g. "switchboard-1x1"
    label: str  # for tables
    port: int
    processes: int  # gateway processes (0 for direct)
    cpus: str | None  # taskset CPU list of the gateway, None: unpinned
    model: str
    stream_model: str
    slow_stream_model: str
    service: Service | None = None
    ready_path: str = "/health/liveliness"
    ready_timeout_s: float = 60.0
    # Sent with every request: how a header-routed gateway (Portkey) finds the upstream.
    headers: tuple[tuple[str, str], ...] = ()
    # The key the load sends (the "everything on" target gets a database key at start).
    api_key: str = MASTER_KEY

    @property
    def is_direct(self) -> bool:
        return self.service is None


def direct(port: int) -> Target:
    return Target(
        "direct",
        "direct to upstream",
        port,
        0,
        None,
        UPSTREAM_MODEL,
        UPSTREAM_STREAM_MODEL,
        UPSTREAM_SLOW_STREAM_MODEL,
    )


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "DATABASE_URL"} and not k.startswith("LITELLM")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def switchboard(
    port: int,
    config: Path,
    logs: Path,
    *,
    front_doors: int,
    workers: int,
    cpus: str | None,
    suffix: str = "",
    up_args: Sequence[str] = (),
) -> Target:
    """`switchboard up` on `config`, with `up_args` too. Without a `database_url` in the
    config it runs with no database at all (issue #22's "everything off"): `up` would
    otherwise open SQLite in its data directory and put every master-key request through
    the spend ledger."""
    argv = [
        sys.executable,
        "-m",
        "broker.cli",
        "--log-level",
        "WARNING",
        "up",
        "--config",
        str(config),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--front-doors",
        str(front_doors),
        *up_args,
    ]
    name = f"switchboard-{front_doors}x{workers}{suffix}"
    env = _clean_env()
    env["DATABASE_URL"] = ""
    service = Service(name, pinned(argv, cpus), env=env, log_path=logs / f"{name}.log")
    return Target(
        name,
        f"Switchboard {front_doors} front door + {workers} worker" + LABELS[suffix],
        port,
        front_doors + workers + 1,
        cpus,
        "bench",
        "bench-stream",
        "bench-slow-stream",
        service,
        ready_path="/health/readiness",
    )


def litellm(port: int, config: Path, logs: Path, *, workers: int, cpus: str | None) -> Target:
    argv = [
        str(LITELLM_VENV / "bin" / "litellm"),
        "--config",
        str(config),
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]
    env = _clean_env()
    env.update(
        LITELLM_LOG="ERROR",
        # Read the bundled price map instead of fetching it at startup.
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
    )
    name = f"litellm-{workers}"
    service = Service(name, pinned(argv, cpus), env=env, log_path=logs / f"{name}.log")
    return Target(
        name,
        f"LiteLLM proxy {workers} worker",
        port,
        workers,
        cpus,
        "bench",
        "bench-stream",
        "bench-slow-stream",
        service,
        ready_timeout_s=180.0,
    )


def litellm_installed_version() -> str | None:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_litellm() -> str:
    """Install the pinned LiteLLM proxy into benchmarks/.litellm-venv unless it is there."""
    if litellm_installed_version() == LITELLM_VERSION:
        return LITELLM_VERSION
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} ...", flush=True)
    if not (LITELLM_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run(
        [
            str(LITELLM_VENV / "bin" / "pip"),
            "install",
            "-q",
            f"litellm[proxy]=={LITELLM_VERSION}",
        ],
        check=True,
    )
    return LITELLM_VERSION


def portkey(port: int, upstream_url: str, logs: Path, *, cpus: str | None) -> Target:
    """Portkey's gateway, told per request (its documented headers) to call our upstream."""
    argv = ["node", str(PORTKEY_PACKAGE / "build" / "start-server.js"), f"--port={port}"]
    argv.append("--headless")  # no web console: the lightest documented mode
    service = Service(
        "portkey", pinned(argv, cpus), env=_clean_env(), log_path=logs / "portkey.log"
    )
    return Target(
        "portkey",
        f"Portkey gateway {PORTKEY_VERSION} (1 Node.js process)",
        port,
        1,
        cpus,
        UPSTREAM_MODEL,
        UPSTREAM_STREAM_MODEL,
        UPSTREAM_SLOW_STREAM_MODEL,
        service,
        ready_path="/",
        headers=(("x-portkey-provider", "openai"), ("x-portkey-custom-host", f"{upstream_url}/v1")),
    )


def portkey_installed_version() -> str | None:
    manifest = PORTKEY_PACKAGE / "package.json"
    if not manifest.exists():
        return None
    version = json.loads(manifest.read_text()).get("version")
    return version if isinstance(version, str) else None


def ensure_portkey() -> str | None:
    """Install the pinned Portkey gateway into benchmarks/.portkey with npm unless it is there.

    None, with the reason printed, when Node.js or npm is missing or the install fails: the
    run then measures the other targets and says Portkey was skipped.
    """
    if portkey_installed_version() == PORTKEY_VERSION:
        return PORTKEY_VERSION
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("Node.js/npm not found: the Portkey gateway is skipped", flush=True)
        return None
    print(f"installing @portkey-ai/gateway@{PORTKEY_VERSION} into {PORTKEY_DIR} ...", flush=True)
    PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(PORTKEY_DIR),
            "--no-audit",
            "--no-fund",
            # Its postinstall only patches dev tooling; the built server needs no script.
            "--ignore-scripts",
            f"@portkey-ai/gateway@{PORTKEY_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or portkey_installed_version() != PORTKEY_VERSION:
        print(f"npm could not install Portkey's gateway, skipped: {done.stderr[-400:]}", flush=True)
        return None
    return PORTKEY_VERSION
