"""`switchboard up | serve | worker`: the command line.

- `up` runs a whole service on one machine: an embedded Redis when no REDIS_URL is set,
  one or more front doors and N worker processes, all stopped together.
- `serve` runs one front door; `worker` one worker. Both need REDIS_URL (or the config's
  `switchboard_settings.redis_url`). Any number of them on one Redis form one service.
- `check` reports every problem in a config, as `up` would find it, and runs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.admin_cli import ADMIN_COMMANDS, add_admin_commands, run_admin
from broker.batch_cli import add_batch_commands, run_batch_command
from broker.config import Config, ConfigError
from broker.config.check import EXIT_INVALID, check_config, report_failure
from broker.launch import (
    SetupError,
    check_port_free,
    configure_logging,
    load,
    required_redis_url,
    run_async,
)
from broker.reply_hub import SubscribeFailed
from workers.deployment import Secret
from workers.log_format import use_json
from workers.log_redaction import Redactor, mask_secrets, secrets_in
from workers.runtime.options import RuntimeOptions
from workers.supervision import TaskDied


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", default=os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("SWITCHBOARD_LOG_FORMAT", "text"),
        help="json: one object a line, with the request id (also litellm_settings.json_logs)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--config", type=Path, help="a LiteLLM proxy config.yaml")
        source.add_argument(
            "--demo", action="store_true", help="serve a built-in fake model (no keys, no network)"
        )

    check = commands.add_parser(
        "check", help="report every problem in a config (exit 0: `up` would start, 2: not)"
    )
    check.add_argument("--config", type=Path, required=True, help="a LiteLLM proxy config.yaml")

    up = commands.add_parser("up", help="front door + workers + embedded Redis, one command")
    with_config(up)
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=4000)
    up.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    up.add_argument("--front-doors", type=int, default=1, help="front door processes")
    up.add_argument(
        "--batch-workers",
        type=int,
        default=1,
        help="processes given to batches alone, at a lower CPU priority (default 1; 0: "
        "front doors and workers run batches beside interactive requests)",
    )
    up.add_argument(
        "--callback-workers",
        type=int,
        default=1,
        help="processes that deliver the callbacks alone, when the config names any (default "
        "1; 0: the batch process delivers them, or the workers without one)",
    )
    up.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="first of the ports where each process serves its own /metrics: front doors "
        "at PORT, PORT+1, ..., then the workers, the batch workers, the callbacks processes",
    )
    up.add_argument("--data-dir", type=Path, default=None, help="default ./switchboard-data")

    serve = commands.add_parser("serve", help="one front door (needs REDIS_URL)")
    with_config(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument(
        "--reuse-port", action="store_true", help="share the port with other front doors"
    )
    serve.add_argument(
        "--metrics-port", type=int, default=None, help="also serve on this port, unshared"
    )
    serve.add_argument(
        "--no-batches", action="store_true", help="run no batch (`worker --batches` runs them)"
    )

    worker = commands.add_parser("worker", help="one worker process (needs REDIS_URL)")
    with_config(worker)
    worker.add_argument("--concurrency", type=int, default=None)
    worker.add_argument(
        "--worker-id", default=None, help="its consumer name (`up` names its workers to know them)"
    )
    worker.add_argument("--metrics-host", default="127.0.0.1")
    worker.add_argument(
        "--metrics-port", type=int, default=None, help="serve GET /metrics on this port"
    )
    batch_lane = worker.add_mutually_exclusive_group()
    batch_lane.add_argument(
        "--batches",
        action="store_true",
        help="run batches alone, at a lower CPU priority: their runners and lane only",
    )
    batch_lane.add_argument(
        "--no-batches", action="store_true", help="read the interactive lanes only"
    )
    batch_lane.add_argument(
        "--callbacks",
        action="store_true",
        help="deliver the config's callbacks alone, serving no request",
    )
    worker.add_argument(
        "--callbacks-standby",
        action="store_true",
        help="leave the callbacks to a `worker --callbacks` process unless it falls behind",
    )
    add_admin_commands(commands)
    add_batch_commands(commands)
    return parser


def _check_roles(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse what a process's role would silently ignore."""
    if args.command == "worker" and args.callbacks:
        for given, flag in (
            (args.callbacks_standby, "--callbacks-standby"),
            (args.concurrency is not None, "--concurrency"),
        ):
            if given:
                parser.error(f"worker --callbacks serves no request: {flag} does not apply")
    if args.command == "up" and args.callback_workers < 0:
        parser.error("--callback-workers must be 0 or more")


def _run_process(args: argparse.Namespace, redactor: Redactor) -> int:
    """`serve` or `worker`: one process on the config, until it is told to stop."""
    config = load(args, os.environ)
    redactor.add_secrets(secrets_in(config, Secret))
    if config.litellm_settings.json_logs:
        use_json()
    redis_url = required_redis_url(config, os.environ)
    if args.command == "serve":
        if not args.reuse_port:
            check_port_free(args.host, args.port)
        return run_async(lambda stopping: serve(config, redis_url, args, stopping))
    return run_async(lambda stopping: work(config, redis_url, args, stopping))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_roles(parser, args)
    redactor = configure_logging(args.log_level, args.log_format)
    try:
        if args.command in ADMIN_COMMANDS:
            return run_admin(args)
        if args.command == "check":
            return check(args.config)
        if args.command == "batch":
            if getattr(args, "local", False):
                from broker.batch_local import run_local_command

                return run_local_command(args)
            return run_batch_command(args)
        if args.command == "up":
            from broker.supervisor import run_up

            return run_up(args, redactor)
        return _run_process(args, redactor)
    except ConfigError as exc:
        for line in report_failure(exc, getattr(args, "config", None)):
            print(f"switchboard: {line}", file=sys.stderr)
        return EXIT_INVALID
    except SetupError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    except (RedisConnectionError, RedisTimeoutError) as exc:
        # One line naming the address (never a password), not redis-py's traceback.
        print(
            f"switchboard: cannot reach Redis: {mask_secrets(str(exc))} (check REDIS_URL or "
            "switchboard_settings.redis_url; without either, `switchboard up` starts its own "
            "Redis)",
            file=sys.stderr,
        )
        return 2
    except (TaskDied, SubscribeFailed) as exc:
        # Logged where it happened; the exit code is for whoever starts the process again.
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1


def check(path: Path) -> int:
    # The report lists every warning itself; the loader's log lines would repeat them.
    logging.getLogger("switchboard.config").setLevel(logging.ERROR)
    status, lines = check_config(path, os.environ)
    for line in lines:
        print(line)
    return status


def runtime_options(config: Config, concurrency: int | None = None) -> RuntimeOptions:
    return RuntimeOptions.from_settings(config.switchboard_settings, concurrency=concurrency)


async def serve(
    config: Config, redis_url: str, args: argparse.Namespace, stopping: asyncio.Event
) -> None:
    from broker.app import serve_front_door

    await serve_front_door(
        config,
        redis_url,
        host=args.host,
        port=args.port,
        stopping=stopping,
        reuse_port=args.reuse_port,
        metrics_port=args.metrics_port,
        batch_role="none" if args.no_batches else "beside",
    )


async def work(
    config: Config, redis_url: str, args: argparse.Namespace, stopping: asyncio.Event
) -> None:
    # Imported here, as `up` must set the shared metrics directory before anything imports
    # prometheus_client (broker/shared_metrics.py), and the hooks reach the front door's.
    from broker.batch_process import interactive_options, serve_batches
    from broker.callbacks_process import serve_callbacks, standing_by
    from broker.hooks import service_hooks
    from workers.routing.plan import build_plan
    from workers.runtime.process import serve_worker

    if args.callbacks:
        await serve_callbacks(config, redis_url, args, stopping)
        return
    if args.batches:
        await serve_batches(config, redis_url, args, stopping)
        return
    options = runtime_options(config, args.concurrency)
    if args.no_batches:
        options = interactive_options(options, config.switchboard_settings)
    if args.callbacks_standby:
        options = standing_by(options)
    await serve_worker(
        build_plan(config.deployments, config.model_list, config.router_settings),
        redis_url,
        options,
        stopping=stopping,
        worker_id=args.worker_id,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        hooks=service_hooks(config),
    )


if __name__ == "__main__":
    sys.exit(main())
