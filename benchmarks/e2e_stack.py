"""bench-e2e's service under test and its meters: the Procfile's processes (release, then web,
worker and beat, each its own process group, default settings), the CPU of each part of the
machine, the memory (PSS) of web and worker, and the inbox's view of a step's events.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg

from benchmarks.bench_ingest import tree_cpu_seconds
from cpn_sync.procfile import read_procfile
from cpn_sync.settings import libpq_url
from db.models import FINAL_EVENT_STATUSES, OPEN_EVENT_STATUSES

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FINAL = tuple(str(status) for status in FINAL_EVENT_STATUSES)
OPEN = [str(status) for status in OPEN_EVENT_STATUSES]


@dataclass
class Stack:
    """web, worker and beat as the Procfile starts them; `url` is the webhook endpoint."""

    env: dict[str, str]
    workdir: Path
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    url: str = ""

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def start(self) -> Stack:
        commands = read_procfile()
        env = {**self.env, "PATH": os.pathsep.join([str(BIN), self.env.get("PATH", "")])}
        release = subprocess.run(["sh", "-c", f"exec {commands['release']}"], env=env, cwd=ROOT,
                                 capture_output=True, text=True)  # fmt: skip
        if release.returncode:
            raise SystemExit(f"release failed:\n{release.stdout}{release.stderr}")
        for name in ("web", "worker", "beat"):
            with (self.workdir / f"{name}.log").open("wb") as log:
                self.children[name] = subprocess.Popen(
                    ["sh", "-c", f"exec {commands[name]}"], env=env, cwd=ROOT, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
        self.url = f"http://127.0.0.1:{env['PORT']}/webhooks/clerk"
        deadline = time.monotonic() + 90
        while True:
            for name, child in self.children.items():
                if child.poll() is not None:
                    raise SystemExit(f"{name} exited:\n{self.log(name)[-3000:]}")
            web_up = False
            with contextlib.suppress(httpx.HTTPError):
                web_up = httpx.get(self.url.replace("/webhooks/clerk", "/healthz")).is_success
            if web_up and "ready." in self.log("worker"):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the stack did not start:\n" + self.log("worker")[-3000:])
            time.sleep(0.3)
        time.sleep(2)  # both uvicorn workers and both pool children finish their start-up
        return self

    def stop(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children.values():
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def pid(self, name: str) -> int:
        return self.children[name].pid


def postgres_cpu_seconds() -> float:
    """Every PostgreSQL process on this machine (backends, WAL writer, checkpointer)."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        name = process.info["name"] or ""
        times = process.info["cpu_times"]
        if name.startswith("postgres") and times is not None:
            total += times.user + times.system
    return total


def pid_cpu_seconds(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return 0.0


@dataclass
class CpuMeter:
    """CPU seconds of each part over a window: web, worker, beat (process trees), PostgreSQL,
    Redis, and the whole machine (busy seconds of all cores)."""

    stack: Stack
    redis_pid: int
    start: dict[str, float] = field(default_factory=dict)

    def read(self) -> dict[str, float]:
        times = psutil.cpu_times()
        return {
            "web": tree_cpu_seconds(self.stack.pid("web")),
            "worker": tree_cpu_seconds(self.stack.pid("worker")),
            "beat": tree_cpu_seconds(self.stack.pid("beat")),
            "postgres": postgres_cpu_seconds(),
            "redis": pid_cpu_seconds(self.redis_pid),
            "machine": times.user + times.system + times.nice + getattr(times, "irq", 0.0)
            + getattr(times, "softirq", 0.0),
            "wall": time.monotonic(),
        }  # fmt: skip

    def begin(self) -> None:
        self.start = self.read()

    def end(self) -> dict[str, float]:
        now = self.read()
        return {part: now[part] - self.start[part] for part in now}


class PssSampler(threading.Thread):
    """Peak PSS (pages shared after fork counted once) of each named process tree, sampled
    once a second: reading PSS walks the page tables, so not more often during a load test."""

    def __init__(self, roots: Mapping[str, int]) -> None:
        super().__init__(daemon=True)
        self.roots = dict(roots)
        self.peak = dict.fromkeys(self.roots, 0)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            for name, pid in self.roots.items():
                with contextlib.suppress(psutil.Error, OSError):
                    root = psutil.Process(pid)
                    total = sum(
                        process.memory_full_info().pss
                        for process in [root, *root.children(recursive=True)]
                    )
                    self.peak[name] = max(self.peak[name], total)

    def stop(self) -> dict[str, int]:
        self.stopping.set()
        self.join()
        return self.peak


@contextlib.contextmanager
def connection(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        yield conn


def last_id(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM webhook_events").fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]


def open_events(conn: psycopg.Connection[tuple[object, ...]], after_id: int) -> int:
    """The step's events stored and not final yet (its backlog). Read through the status
    index: counting the step's rows instead took PostgreSQL 0.1 core from the run it measured."""
    row = conn.execute(
        "SELECT count(*) FROM webhook_events WHERE status = ANY(%s) AND id > %s",
        (OPEN, after_id),
    ).fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]


def step_rows(
    conn: psycopg.Connection[tuple[object, ...]], after_id: int
) -> list[tuple[str, str, float, float | None]]:
    """(svix id, status, received_at, processed_at) of the step's events, as epoch seconds."""
    rows = conn.execute(
        "SELECT svix_id, status, extract(epoch FROM received_at)::float8, "
        "extract(epoch FROM processed_at)::float8 FROM webhook_events WHERE id > %s",
        (after_id,),
    ).fetchall()
    return [(str(a), str(b), float(c), None if d is None else float(d)) for a, b, c, d in rows]  # type: ignore[arg-type]


def connections_by_application(conn: psycopg.Connection[tuple[object, ...]], database: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    ).fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]
