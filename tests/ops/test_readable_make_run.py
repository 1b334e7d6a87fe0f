"""Readable output for a person, JSON for a machine: console log lines on a terminal, JSON
lines otherwise, LOG_FORMAT winning either way; and `cpn-sync dev --with flower` runs Flower
and prints its URL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cpn_sync.local import free_port
from tests.ops.terminal import TerminalProcess
from tests.ops.test_dev_stack import run_dir
from tests.ops.test_make_run import UNSET
from tests.services import ROOT

__all__ = ["run_dir"]

CLI = sys.prefix + "/bin/cpn-sync"
# A structlog console line: time, [level], event; what Alembic says on every migrate.
CONSOLE_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \[info\s*\] Will assume transactional DDL")


def env_without_log_format(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}
    return {**env, **extra}


def migrate_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "transactional DDL" in line]


def test_console_lines_on_a_terminal() -> None:
    terminal = TerminalProcess([CLI, "migrate"], env_without_log_format(), ROOT)

    assert terminal.finish() == 0, terminal.output
    lines = migrate_lines(terminal.output)
    assert lines
    assert all(CONSOLE_LINE.match(line) for line in lines), lines


def test_json_lines_into_a_pipe() -> None:
    result = subprocess.run(
        [CLI, "migrate"], env=env_without_log_format(), cwd=ROOT, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    lines = migrate_lines(result.stderr)
    assert lines
    assert {json.loads(line)["event"] for line in lines} == {"Will assume transactional DDL."}


def test_log_format_wins_on_a_terminal() -> None:
    terminal = TerminalProcess([CLI, "migrate"], env_without_log_format(LOG_FORMAT="json"), ROOT)

    assert terminal.finish() == 0, terminal.output
    lines = migrate_lines(terminal.output)
    assert lines
    assert {json.loads(line)["level"] for line in lines} == {"info"}


@pytest.mark.slow
def test_dev_with_flower_on_a_terminal(run_dir: Path) -> None:
    flower_port, web_port = free_port(), free_port()
    env = {k: v for k, v in env_without_log_format().items() if k not in UNSET}
    env.update(
        DATA_DIR=str(run_dir / "data"), PORT=str(web_port), FLOWER_PORT=str(flower_port),
        WEB_CONCURRENCY="1", WORKER_CONCURRENCY="1", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    dev = TerminalProcess([CLI, "dev", "--with", "flower"], env, ROOT)
    try:
        dev.wait_for(lambda out: "Flower:" in out, 90, "the Flower line")
        url = re.search(r"^Flower: +(\S+)$", dev.output, re.MULTILINE)
        assert url, dev.output
        assert url.group(1) == f"http://localhost:{flower_port}/"
        dev.wait_for(lambda out: "web.started" in out or "Uvicorn running" in out, 90, "web")
        answer = _poll(f"http://127.0.0.1:{flower_port}/workers")
        code = dev.interrupt()
    finally:
        dev.kill()

    assert answer == 200
    assert code in (0, 130, -2), dev.output[-3000:]
    web_lines = [line for line in dev.output.splitlines() if line.startswith("web ")]
    assert web_lines
    assert not [line for line in web_lines if line.split("| ", 1)[1].startswith("{")]
    assert any(re.search(r"\[info\s*\]", line) for line in web_lines), web_lines
    assert "stopped: web, worker, beat, flower" in dev.output


def _poll(url: str, timeout: float = 60.0) -> int:
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=5).status_code
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
