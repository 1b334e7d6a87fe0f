"""A command run as on a terminal: its stdin, stdout and stderr are a pseudo-terminal, whose
output a thread collects, so that `isatty()` is true in the command as it is for a developer."""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class TerminalProcess:
    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        master, slave = pty.openpty()
        self._master = master
        self._chunks: list[bytes] = []
        self.process = subprocess.Popen(
            list(args), env=dict(env), cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, condition: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while not condition(self.output):
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"exited before {what}:\n{self.output[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}:\n{self.output[-4000:]}")
            time.sleep(0.2)
        return self.output

    def finish(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        os.close(self._master)
        return code

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C to the whole group, as the terminal sends it."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.finish(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
