"""JSON log lines (`--log-format json`): one object a line, with the request id of the task
that logged it, and secrets still masked."""

from __future__ import annotations

import asyncio
import io
import logging

import orjson

from broker.cli import build_parser
from broker.supervisor import _child_argv
from workers.log_format import REQUEST_ID, JsonFormatter
from workers.log_redaction import Redactor


def _logger() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Redactor(["super-secret-value"]))
    logger = logging.getLogger("test.json-logs")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


async def test_each_line_carries_the_request_id_of_its_task() -> None:
    logger, out = _logger()

    async def serve(request_id: str) -> None:
        REQUEST_ID.set(request_id)
        await asyncio.sleep(0)
        logger.info("serving with key %s", "super-secret-value")

    await asyncio.gather(serve("req_a"), serve("req_b"))
    logger.info("no request here")
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(line.get("request_id", "-") for line in lines) == ["-", "req_a", "req_b"]
    assert all(line["level"] == "INFO" and line["logger"] == "test.json-logs" for line in lines)
    assert "super-secret-value" not in out.getvalue() and "***" in lines[0]["message"]


def test_the_command_line_takes_log_format_and_up_passes_it_on() -> None:
    args = build_parser().parse_args(["--log-format", "json", "up", "--demo"])
    assert args.log_format == "json"
    argv = _child_argv(args, ["worker"])
    assert argv[argv.index("--log-format") + 1] == "json"
