"""What a refused start says: one line and exit 2, never a traceback (issue #16)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from broker.cli import main
from tests.broker.harness import make_config, service

CONFIG = """\
model_list:
  - model_name: a
    litellm_params: {model: openai/a, api_key: k, api_base: "http://127.0.0.1:9/v1"}
general_settings: {master_key: sk-start-test}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


def test_a_busy_port_is_one_line_naming_the_fix(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        status = main(["serve", "--config", str(config_path), "--port", str(port)])
    assert status == 2
    assert capsys.readouterr().err == (
        f"switchboard: port {port} is in use; pick another with --port\n"
    )


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_an_unreachable_redis_is_one_line_with_the_address_and_no_password(
    command: str,
    config_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2-secret@127.0.0.1:{closed_port}/0")
    args = [command, "--config", str(config_path)]
    if command == "serve":
        args += ["--port", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("switchboard: cannot reach Redis: ")
    assert f"127.0.0.1:{closed_port}" in err and "hunter2" not in err
    assert len(err.strip().splitlines()) == 1


async def test_a_worker_says_when_it_is_ready(
    namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config("http://127.0.0.1:9/v1", namespace)
    with caplog.at_level(logging.INFO, logger="switchboard"):
        async with service(config, front_doors=0):
            pass
    ready = [r.getMessage() for r in caplog.records if " ready: lanes " in r.getMessage()]
    assert len(ready) == 1 and "concurrency" in ready[0]
