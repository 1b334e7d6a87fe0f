"""`make bench-sync`: `POST /api/me/sync` at 50 concurrent clients, against a bare Starlette
route that only verifies the session token (the floor), measured in the same run.

Servers run as the Procfile runs `web` (uvicorn, WEB_CONCURRENCY=2), with a real
`cpn-sync worker` (concurrency 2) and a fake Clerk API (`cpn_sync.fake_clerk`) in processes of
their own, on real PostgreSQL and Redis (BENCH_DATABASE_URL / BENCH_REDIS_URL, else embedded).
Tokens are minted here with a key of the run's own. Scenarios:

- `known user`: users already in the database, no body (the common call of every page load);
- `known user + onboarding`: each call hands over onboarding data, migrated by the worker;
- `user fetched from Clerk`: each call is a user only the fake Clerk knows (one fetch each).

The client is a minimal HTTP/1.1 keep-alive loop on asyncio (one connection per client), the
same for every server, so its own cost is in every figure alike. Prints median and p99 of each
and the ratios to the floor, and appends them to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import orjson
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from benchmarks import summary
from benchmarks.bench_ingest import BIN, ROOT, SECRET, Server, broker, database, running
from cpn_sync import local
from cpn_sync.fake_clerk import DEFAULT_KEY
from cpn_sync.fake_clerk_users import make_users
from cpn_sync.procfile import read_procfile
from cpn_sync.settings import libpq_url

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)
GOAL_P99_MS = 50.0


@dataclass
class Run:
    label: str
    latencies: list[float]
    statuses: Counter[int]
    seconds: float

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000 if ordered else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else 0.0

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


def raw_request(token: str, body: bytes = b"") -> bytes:
    return (
        f"POST /api/me/sync HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _client(
    port: int, work: asyncio.Queue[bytes], run: Run, stop_at: float, cycle: bool
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop_at:
            try:
                request = work.get_nowait()
            except asyncio.QueueEmpty:
                return
            if cycle:
                work.put_nowait(request)
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            found = _LENGTH.search(head)
            await reader.readexactly(int(found.group(1)) if found else 0)
            run.latencies.append(time.perf_counter() - started)
            run.statuses[int(head[9:12])] += 1
    finally:
        writer.close()


async def _drive(
    port: int, requests: list[bytes], clients: int, seconds: float, cycle: bool
) -> Run:
    work: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        work.put_nowait(request)
    run = Run("", [], Counter(), 0.0)
    started = time.monotonic()
    await asyncio.gather(
        *(_client(port, work, run, started + seconds, cycle) for _ in range(clients))
    )
    run.seconds = time.monotonic() - started
    return run


def drive(url: str, requests: list[bytes], clients: int, seconds: float, *, cycle: bool) -> Run:
    port = int(url.rsplit(":", 1)[1])
    return asyncio.run(_drive(port, requests, clients, seconds, cycle))


def mint(key: rsa.RSAPrivateKey, sub: str) -> str:
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "nbf": now - 5, "exp": now + 900, "azp": "https://bench"}
    return jwt.encode(claims, key, algorithm="RS256")


def add_users(database_url: str, clerk_ids: list[str]) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO users (clerk_id, email, email_verified)"
            " SELECT id, id || '@bench.invalid', true FROM unnest(%s::text[]) AS id",
            (clerk_ids,),
        )


@contextlib.contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool]
) -> Iterator[None]:
    with log.open("wb") as out:
        child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready():
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[0]} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield
    finally:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def logged(log: Path, marker: str = "ready.") -> bool:
    return marker in log.read_text(errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=2000, help="users in the database")
    parser.add_argument("--clerk-users", type=int, default=3000, help="users only in Clerk")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    known = [f"user_bench{n:08d}" for n in range(args.users)]
    in_clerk = [user["id"] for user in make_users(args.clerk_users, seed=7)]
    workdir = Path(tempfile.mkdtemp(prefix="cpn-bench-sync-"))
    with database() as database_url, broker() as broker_url:
        add_users(database_url, known)
        clerk_port = local.free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": broker_url,
            "CLERK_WEBHOOK_SECRET": SECRET,
            "CLERK_JWT_KEY": pem.decode(),
            "CLERK_SECRET_KEY": DEFAULT_KEY,
            "CLERK_API_URL": f"http://127.0.0.1:{clerk_port}/v1",
            "CLERK_API_RATE_LIMIT": "100000",
            "SYNC_USER_REQUESTS_PER_MINUTE": "100000",
            "SYNC_PROCESS_REQUESTS_PER_SECOND": "100000",
            "WEB_CONCURRENCY": "2",
            "WORKER_CONCURRENCY": "2",
            "WORKER_QUEUES": "webhooks",
            "WORKER_METRICS_PORT": "0",
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", os.defpath)]),
        }
        fake = [str(BIN / "python"), "-c",
                "import sys; from cpn_sync.fake_clerk import serve_forever; "
                f"serve_forever({args.clerk_users}, {clerk_port}, seed=7)"]  # fmt: skip
        web = Server("cpn-sync", "cpn-sync", ["sh", "-c", f"exec {read_procfile()['web']}"], {})
        baseline = [str(BIN / "python"), "-m", "benchmarks.serve_baseline", "verify_token"]
        floor = Server("verify-token", "bare Starlette: verify the token only", baseline, {})
        worker_log = workdir / "worker.log"
        fake_env = {name: value for name, value in env.items() if name != "WEB_CONCURRENCY"}
        tokens = [mint(key, clerk_id) for clerk_id in known]
        plain = [raw_request(token) for token in tokens]
        runs: dict[str, Run] = {}
        with running(floor, env, workdir / "floor.log") as (url, _):
            drive(url, plain, args.clients, 2, cycle=True)  # warm-up
            runs["floor"] = drive(url, plain, args.clients, args.seconds, cycle=True)
        with (
            # uvicorn.run reads WEB_CONCURRENCY itself: the fake is one process.
            process(fake, fake_env, workdir / "clerk.log", lambda: listening(clerk_port)),
            process([str(BIN / "cpn-sync"), "worker"], env, worker_log, lambda: logged(worker_log)),
            running(web, env, workdir / "web.log") as (url, _),
        ):
            drive(url, plain, args.clients, 2, cycle=True)  # warm-up
            runs["known"] = drive(url, plain, args.clients, args.seconds, cycle=True)
            handed = [
                raw_request(token, orjson.dumps({"onboarding": {
                    "sessionDataId": f"ssd_bench_{n}",
                    "profile": {"firstName": "Bench", "age": 30, "ethnicity": "x", "rating": 7},
                    "dataEntry": {"date": "2026-11-20", "cost": 50, "time": 60, "nuts": 1},
                }}))
                for n, token in enumerate(tokens)
            ]  # fmt: skip
            runs["onboarding"] = drive(url, handed, args.clients, args.seconds, cycle=False)
            fetched = [raw_request(mint(key, clerk_id)) for clerk_id in in_clerk]
            runs["clerk"] = drive(url, fetched, args.clients, args.seconds, cycle=False)
    report(runs, args)


LABELS = {
    "floor": "bare Starlette route: verify the token only (floor)",
    "known": "cpn-sync, known user, no body",
    "onboarding": "cpn-sync, known user + onboarding (migrated by the worker)",
    "clerk": "cpn-sync, user fetched from the fake Clerk (created by the worker)",
}


def report(runs: dict[str, Run], args: argparse.Namespace) -> None:
    floor = runs["floor"]
    lines = [
        f"## bench-sync {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{summary.machine()}; {args.clients} concurrent clients (asyncio HTTP/1.1 keep-alive, "
        f"one connection each) for up to {args.seconds:g} s per scenario; uvicorn with 2 workers, "
        "`cpn-sync worker` concurrency 2, fake Clerk in its own process.",
        "",
        "| scenario | calls | calls/s | p50 ms | p99 ms | p99 / floor p99 | answers |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, run in runs.items():
        answers = ", ".join(f"{status}: {count}" for status, count in sorted(run.statuses.items()))
        ratio = run.p99 / floor.p99 if floor.p99 else 0.0
        lines.append(
            f"| {LABELS[name]} | {len(run.latencies)} | {len(run.latencies) / run.seconds:,.0f} "
            f"| {run.p50:.2f} | {run.p99:.2f} | {ratio:.2f}x | {answers} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    with args.output.open("a") as out:
        out.write("\n" + text)
    known = runs["known"]
    summary.record("bench-sync", [
        summary.Comparison(
            f"POST /api/me/sync p99, known user ({args.clients} clients)", f"{known.p99:.1f} ms",
            "token verification only (p99)", f"{floor.p99:.1f} ms",
            known.p99 / floor.p99 if floor.p99 else 0.0, f"p99 < {GOAL_P99_MS:g} ms",
            known.p99 < GOAL_P99_MS,
        ),
        summary.Comparison(
            "POST /api/me/sync p99, user fetched from Clerk", f"{runs['clerk'].p99:.1f} ms",
            "token verification only (p99)", f"{floor.p99:.1f} ms",
            runs["clerk"].p99 / floor.p99 if floor.p99 else 0.0, "no goal", None,
        ),
    ])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
