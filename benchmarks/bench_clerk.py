"""`make bench-clerk`: a backfill and a reconcile of 100,000 Clerk users, against the floor.

The fake Clerk serves the users from a process of its own (no added latency), as Clerk's API
would from elsewhere. Figures, each against a baseline measured in the same run:

- floor: a plain loop that fetches the same pages with httpx (500 a page, by cursor) and
  upserts each page's users in one transaction with psycopg: what any design pays (floor and
  backfill run twice each, alternating, into an emptied table; the best of each is kept);
- backfill: `cpn-sync clerk backfill --enqueue` run by `cpn-sync worker` as the Procfile
  starts it, from the message to its recorded success; goal >= 0.7x the floor's rate;
- reconcile with 1 % drift (a third missing from the database, a third stale, a third gone
  from Clerk and each confirmed by a 404), sent as beat sends it; goal <= 1.5x the backfill;
- the worker's memory (PSS of all its processes, sampled) during both; goal < 250 MB;
- the backfill again with the fake's limiter at Clerk's production budget (1,000 requests per
  10 s) and at a development instance's (100 per 10 s): whether the API or the database bounds
  the rate.

Prints a table, appends a row to BENCHMARKS.md and records the summary figures.

    python -m benchmarks.bench_clerk [--users 100000]

BENCH_DATABASE_URL names a PostgreSQL server the benchmark may create databases on (default:
the embedded one under .data/bench-postgres); Redis is a fresh embedded server.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from sqlalchemy import Engine, text

from benchmarks import summary
from benchmarks.bench_cpn import MemorySampler, append_row, wait_for
from cpn_sync import local
from cpn_sync.fake_clerk import DEFAULT_KEY
from cpn_sync.settings import libpq_url, normalize_database_url
from cpn_sync.task_contract import CLERK_BACKFILL, CLERK_RECONCILE
from db.engine import make_engine
from db.migrate import upgrade
from tests.worker_process import WorkerProcess

MIB = 1024 * 1024
FLOOR_UPSERT = """
INSERT INTO users (clerk_id, email, email_verified, first_name, last_name, image_url,
                   created_at, updated_at, last_sign_in_at)
VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s / 1000.0), to_timestamp(%s / 1000.0),
        to_timestamp(%s / 1000.0))
ON CONFLICT (clerk_id) DO UPDATE SET email = excluded.email,
    email_verified = excluded.email_verified, first_name = excluded.first_name,
    last_name = excluded.last_name, image_url = excluded.image_url,
    created_at = excluded.created_at, updated_at = excluded.updated_at,
    last_sign_in_at = excluded.last_sign_in_at
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def fake_clerk(users: int, rate_limit: int | None = None) -> Iterator[str]:
    """The fake in a process of its own; answers its API URL once it serves."""
    port = free_port()
    options = f", rate_limit={rate_limit}" if rate_limit else ""
    code = (
        "from cpn_sync.fake_clerk import serve_forever; "
        f"serve_forever({users}, {port}, onboarding=False{options})"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            with contextlib.suppress(httpx.HTTPError):
                headers = {"Authorization": f"Bearer {DEFAULT_KEY}"}
                if httpx.get(f"{url}/users/count", headers=headers).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the fake Clerk did not start")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def floor(api_url: str, database_url: str) -> tuple[float, int]:
    """Fetch every page with httpx and upsert it with psycopg, one transaction a page."""
    started = time.perf_counter()
    users = 0
    headers = {"Authorization": f"Bearer {DEFAULT_KEY}"}
    with (
        httpx.Client(base_url=api_url, headers=headers) as http,
        psycopg.connect(libpq_url(database_url)) as connection,
    ):
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500, "order_by": "created_at"}
            if cursor:
                params["starting_after"] = cursor
            page = orjson.loads(http.get("/users", params=params).content)
            rows = []
            for user in page:
                primary = next(
                    e
                    for e in user["email_addresses"]
                    if e["id"] == user["primary_email_address_id"]
                )
                rows.append((
                    user["id"], primary["email_address"],
                    primary["verification"]["status"] == "verified", user["first_name"],
                    user["last_name"], user["image_url"], user["created_at"],
                    user["updated_at"], user["last_sign_in_at"],
                ))  # fmt: skip
            with connection.transaction(), connection.cursor() as cur:
                cur.executemany(FLOOR_UPSERT, rows)
            users += len(page)
            if len(page) < 500:
                break
            cursor = page[-1]["id"]
    return time.perf_counter() - started, users


ROUNDS = 2


def empty(engine: Engine) -> None:
    """No user and no job state: the next backfill starts from nothing."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM users"))
        connection.execute(text("DELETE FROM clerk_sync_state"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE users"))


def last_success(engine: Engine, job: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT last_success_at FROM clerk_sync_state WHERE job = :job"), {"job": job}
        ).scalar()


def run_job(engine: Engine, task: str, job: str) -> float:
    """Send the task as the CLI (`--enqueue`) or beat does; seconds until it recorded success."""
    from workers.app import app

    before = last_success(engine, job)
    started = time.perf_counter()
    app.send_task(task, ignore_result=True)
    wait_for(lambda: last_success(engine, job) not in (None, before), timeout=3600)
    return time.perf_counter() - started


def make_drift(engine: Engine, users: int) -> dict[str, int]:
    """1 % drift, made on the database's side (the fake runs in its own process): rows
    deleted (missing), rows made older than Clerk's (stale), and rows of users Clerk never had
    (extra: each confirmed by a 404)."""
    third = max(1, users // 300)
    with engine.begin() as connection:
        connection.execute(
            text("DELETE FROM users WHERE id IN (SELECT id FROM users ORDER BY id LIMIT :n)"),
            {"n": third},
        )
        connection.execute(
            text(
                "UPDATE users SET updated_at = updated_at - interval '1 day', first_name = 'Old' "
                "WHERE id IN (SELECT id FROM users ORDER BY id DESC LIMIT :n)"
            ),
            {"n": third},
        )
        connection.execute(
            text(
                "INSERT INTO users (clerk_id, email, updated_at) SELECT 'user_gone_' || n, "
                "'gone' || n || '@example.com', now() - interval '1 year' "
                "FROM generate_series(1, :n) n"
            ),
            {"n": third},
        )
    return {"missing": third, "stale": third, "extra": third}


def drift_found(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        counts = connection.execute(
            text("SELECT last_counts FROM clerk_sync_state WHERE job = 'reconcile'")
        ).scalar()
    return {kind: int(counts.get(kind, 0)) for kind in ("missing", "stale", "extra")}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    server_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    pg_handle = None
    if server_url:
        admin_url = normalize_database_url(server_url)
    else:
        pg_handle, admin_url = local.start_postgres(Path(".data") / "bench-postgres")
    names = [f"cpn_bench_clerk_{uuid.uuid4().hex[:8]}_{n}" for n in range(4)]
    redis = local.RedisServer(Path(tempfile.mkdtemp(prefix="cpn-bench-redis-")), appendonly=False)
    try:
        redis.start()
        urls = [local.ensure_database(admin_url, name) for name in names]
        for url in urls:
            upgrade(url)
        results = measure(args.users, urls, redis.url)
    finally:
        redis.stop()
        for name in names:
            with contextlib.suppress(Exception):
                local.drop_database(admin_url, name)
        if pg_handle is not None:
            pg_handle.cleanup()
    report(args.users, results)


def measure(users: int, urls: list[str], redis_url: str) -> dict[str, float]:
    floor_url, service_url, production_url, development_url = urls
    results: dict[str, float] = {}
    with fake_clerk(users) as api_url:
        engine = make_engine(service_url)
        floor_engine = make_engine(floor_url)
        with worker(service_url, redis_url, api_url) as (_process, sampler):
            # Each twice, alternating, the best of each kept: a shared machine's noise comes
            # in bursts, and a burst must not land on one side only.
            results["floor_s"] = results["backfill_s"] = float("inf")
            for _ in range(ROUNDS):
                empty(floor_engine)
                seconds, listed = floor(api_url, floor_url)
                if listed != users:
                    raise RuntimeError(f"the floor saw {listed} users of {users}")
                results["floor_s"] = min(results["floor_s"], seconds)
                empty(engine)
                results["backfill_s"] = min(
                    results["backfill_s"], run_job(engine, CLERK_BACKFILL, "backfill")
                )
            results["drift"] = sum(make_drift(engine, users).values())
            results["reconcile_s"] = run_job(engine, CLERK_RECONCILE, "reconcile")
            found = drift_found(engine)
            results.update({f"found_{kind}": float(n) for kind, n in found.items()})
            results["peak_pss"] = sampler.peak_pss
            results["idle_pss"] = sampler.idle_pss
        with engine.connect() as connection:
            results["stored"] = connection.execute(text("SELECT count(*) FROM users")).scalar_one()
        engine.dispose()
        floor_engine.dispose()
    for name, url, limit in (
        ("production", production_url, 1000),
        ("development", development_url, 100),
    ):
        with fake_clerk(users, rate_limit=limit) as api_url:
            engine = make_engine(url)
            with worker(url, redis_url, api_url, api_limit=limit):
                results[f"{name}_s"] = run_job(engine, CLERK_BACKFILL, "backfill")
            engine.dispose()
    return results


@contextlib.contextmanager
def worker(
    database_url: str, redis_url: str, api_url: str, api_limit: int = 1000
) -> Iterator[tuple[WorkerProcess, MemorySampler]]:
    """`cpn-sync worker` as the Procfile starts it, configured by the environment only."""
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url)
    from cpn_sync.settings import get_settings
    from workers.core.celery_app import app

    get_settings.cache_clear()
    app.conf.broker_url = redis_url
    env = {
        "CLERK_SECRET_KEY": DEFAULT_KEY,
        "CLERK_API_URL": api_url,
        "CLERK_API_RATE_LIMIT": str(api_limit),
        "LOG_LEVEL": "INFO",  # the worker says "ready." at INFO; the walks log little
        "WORKER_QUEUES": "maintenance",
    }
    with WorkerProcess(queues="maintenance", extra_env=env) as process:
        assert process.process is not None
        sampler = MemorySampler(process.process.pid)
        sampler.start()
        try:
            yield process, sampler
        finally:
            sampler.stopping.set()
            sampler.join()


def report(users: int, r: dict[str, float]) -> None:
    floor_rate = users / r["floor_s"]
    backfill_rate = users / r["backfill_s"]
    production_rate = users / r["production_s"]
    development_rate = users / r["development_s"]
    lines = [
        f"users {users:,}; stored after reconcile {int(r['stored']):,}",
        f"floor (httpx pages + psycopg upsert, a transaction a page) {r['floor_s']:7.2f} s "
        f"{floor_rate:9.0f} users/s",
        f"backfill through the worker                               {r['backfill_s']:7.2f} s "
        f"{backfill_rate:9.0f} users/s   {backfill_rate / floor_rate:.2f}x floor (goal >= 0.7x)",
        f"reconcile, {int(r['drift'])} users drifted (1 %)                     "
        f"{r['reconcile_s']:7.2f} s   {r['reconcile_s'] / r['backfill_s']:.2f}x backfill "
        f"(goal <= 1.5x); found missing {int(r['found_missing'])}, stale "
        f"{int(r['found_stale'])}, extra {int(r['found_extra'])}",
        f"worker PSS, all processes: peak {r['peak_pss'] / MIB:.0f} MiB (idle "
        f"{r['idle_pss'] / MIB:.0f} MiB; goal < 250 MB)",
        f"backfill at Clerk's production limit (1,000 req / 10 s)   {r['production_s']:7.2f} s "
        f"{production_rate:9.0f} users/s   (API allows {1000 / 10 * 500:,.0f} users/s)",
        f"backfill at a development limit (100 req / 10 s)          {r['development_s']:7.2f} s "
        f"{development_rate:9.0f} users/s   (API allows {100 / 10 * 500:,.0f} users/s)",
    ]
    print("\n".join(lines))
    append_row(
        f"| {dt.date.today()} | bench-clerk | {users:,} users from the fake Clerk (own process, "
        f"no latency), worker as the Procfile starts it | floor {floor_rate:.0f}/s; backfill "
        f"{backfill_rate:.0f}/s ({backfill_rate / floor_rate:.2f}x); reconcile "
        f"{r['reconcile_s']:.1f} s ({r['reconcile_s'] / r['backfill_s']:.2f}x backfill); "
        f"PSS peak {r['peak_pss'] / MIB:.0f} MiB; at 100 req/s {production_rate:.0f}/s, at "
        f"10 req/s {development_rate:.0f}/s |"
    )
    summary.record(
        "bench-clerk",
        [
            summary.Comparison(
                f"backfill users/s ({users:,} users, through the worker)",
                f"{backfill_rate:.0f}/s", "httpx pages + psycopg upsert a page",
                f"{floor_rate:.0f}/s", backfill_rate / floor_rate, ">= 0.7x",
                backfill_rate / floor_rate >= 0.7,
            ),
            summary.Comparison(
                "reconcile time, 1 % drift", f"{r['reconcile_s']:.1f} s",
                "the backfill's time", f"{r['backfill_s']:.1f} s",
                r["reconcile_s"] / r["backfill_s"], "<= 1.5x",
                r["reconcile_s"] / r["backfill_s"] <= 1.5,
            ),
            summary.Comparison(
                "worker peak memory during backfill and reconcile (PSS)",
                f"{r['peak_pss'] / MIB:.0f} MiB", "the same worker idle",
                f"{r['idle_pss'] / MIB:.0f} MiB", r["peak_pss"] / max(r["idle_pss"], 1),
                "< 250 MB", r["peak_pss"] < 250e6,
            ),
            summary.Comparison(
                "backfill at Clerk's production limit (100 req/s)",
                f"{production_rate:.0f}/s", "the same without a limit", f"{backfill_rate:.0f}/s",
                production_rate / backfill_rate, "no goal: where the bound is", None,
            ),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
