"""A real `cpn-sync worker` process for tests whose behaviour crosses processes.

Started as the Procfile starts it (the console script, configured by the environment only), in a
process group of its own so that a test can stop it warmly (SIGTERM) or kill it outright
(SIGKILL to the whole group, children included), like a crash or the OOM killer.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

READY_MARKER = "ready."


class WorkerProcess:
    def __init__(
        self,
        *,
        concurrency: int = 2,
        queues: str = "webhooks,cpn,maintenance",
        extra_env: Mapping[str, str] | None = None,
        command: str = "worker",
    ) -> None:
        self.env = dict(os.environ)
        self.env.update(
            WORKER_CONCURRENCY=str(concurrency),
            WORKER_QUEUES=queues,
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            WORKER_METRICS_PORT="0",  # tests that scrape choose a free port
        )
        self.env.update(extra_env or {})
        self.command = command
        self.log_path = Path(tempfile.mkstemp(prefix=f"cpn-{command}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        """Start and wait until the worker says it is ready to consume."""
        cli = str(Path(sys.executable).parent / "cpn-sync")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [cli, self.command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if self.command == "worker":
            self.wait_for_log(READY_MARKER, timeout)
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """The log's JSON objects (Celery's banner and other plain lines are left out)."""
        parsed = []
        for line in self.log.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    parsed.append(json.loads(line))
        return parsed

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON lines whose `event` is `name`."""
        return [line for line in self.json_lines() if line.get("event") == name]

    def wait_for_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log:
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited early:\n{self.log[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.command} did not log {text!r} in {timeout}s:\n{self.log[-4000:]}"
        )

    def stop(self, timeout: float = 30.0) -> int | None:
        """Warm shutdown (SIGTERM); SIGKILL the group if it does not end in time."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and every pool child."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
