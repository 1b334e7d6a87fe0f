"""Read the Procfile and supervise its processes in the foreground (what `make run` does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """Process type -> command, in file order."""
    entries: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, command = line.partition(":")
        entries[name.strip()] = command.strip()
    return entries


# How a child that was asked to stop (SIGTERM) may end: uvicorn and Celery re-raise the signal
# after their graceful shutdown, so "killed by SIGTERM" is their clean exit too.
CLEAN_STOP_CODES = frozenset({0, -signal.SIGTERM, 128 + signal.SIGTERM})


def _describe(code: int) -> str:
    return signal.Signals(-code).name if code < 0 else f"status {code}"


def _pump(name: str, stream: object, width: int) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        sys.stdout.write(f"{name:<{width}} | {raw.decode(errors='replace')}")
        sys.stdout.flush()


class Supervisor:
    """Runs several commands, prefixes their output, and stops them all on the first signal.

    Each child gets its own process group, so a terminal's Ctrl-C reaches only this supervisor,
    which then sends SIGTERM to every group (Celery's warm shutdown, uvicorn's graceful stop).
    """

    def __init__(self, commands: Mapping[str, str], env: Mapping[str, str]) -> None:
        self.commands = dict(commands)
        self.env = dict(env)
        # The Procfile names console scripts; find them beside this interpreter, as in a venv.
        bin_dir = str(Path(sys.executable).parent)
        self.env["PATH"] = os.pathsep.join([bin_dir, self.env.get("PATH", os.defpath)])
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def start(self) -> None:
        width = max(len(name) for name in self.commands)
        for name, command in self.commands.items():
            child = subprocess.Popen(
                ["sh", "-c", f"exec {command}"],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.children[name] = child
            threading.Thread(target=_pump, args=(name, child.stdout, width), daemon=True).start()

    def wait(self) -> int:
        """Block until a signal or until any child exits; answer the exit status to use."""
        previous = {
            sig: signal.signal(sig, lambda *_: self.stopping.set())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        status = 0
        try:
            while not self.stopping.is_set():
                for name, child in self.children.items():
                    code = child.poll()
                    if code is not None:
                        print(f"{name} exited with status {code}; stopping the others", flush=True)
                        status = code or 1
                        self.stopping.set()
                        break
                self.stopping.wait(0.2)
        finally:
            codes = self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        unclean = {name: code for name, code in codes.items() if code not in CLEAN_STOP_CODES}
        print(
            f"stopped: {', '.join(codes)}"
            + "".join(f"; {name} ended with {_describe(code)}" for name, code in unclean.items()),
            flush=True,
        )
        return status or int(bool(unclean))

    def stop(self, timeout: float = 15.0) -> dict[str, int]:
        """SIGTERM every child's group, SIGKILL what outlives `timeout`; answer the exit codes."""
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int] = {}
        for name, child in self.children.items():
            try:
                codes[name] = child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                codes[name] = child.wait()
        return codes
