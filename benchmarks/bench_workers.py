"""`make bench-workers`: events applied per second by `cpn-sync worker`, against the floor.

Stores N events (half `user.created`, half `session.created`, one session per user) as the
web does, enqueues them as the web does (its own publisher: `webhooks.process_events`, one
message per EVENT_BATCH_SIZE ids), then starts `cpn-sync worker` as the Procfile starts it
(default settings) and measures from "ready" until every event is final. In the same run, on a
second database with the same rows, a plain psycopg loop does the same upserts with one
transaction per event: the floor any per-event design pays. A third run sends one
`webhooks.process_event` per event instead (what the sweeper and `events replay` send): the
cost of a message per event.

Prints both rates and their ratio and appends them to BENCHMARKS.md. Numbers measured on a
shared machine are indicative only.

    python benchmarks/bench_workers.py [--events 10000]

BENCH_DATABASE_URL names a PostgreSQL server the benchmark may create databases on (default:
the embedded one under .data/bench-postgres); Redis is always a fresh embedded server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from celery import Celery
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import summary  # noqa: E402
from cpn_sync import local  # noqa: E402
from cpn_sync.settings import Settings, libpq_url, normalize_database_url  # noqa: E402
from cpn_sync.task_contract import PROCESS_EVENT, celery_config  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from webhooks.publisher import Publisher  # noqa: E402

T0 = 1_716_883_200_000
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"


def user_payload(n: int) -> dict[str, Any]:
    clerk_id = f"user_bench_{n:06d}"
    return {
        "object": "event",
        "type": "user.created",
        "timestamp": T0 // 1000,
        "event_attributes": {"http_request": {"client_ip": "10.0.0.1", "user_agent": USER_AGENT}},
        "data": {
            "object": "user",
            "id": clerk_id,
            "primary_email_address_id": f"idn_{n}",
            "email_addresses": [
                {
                    "id": f"idn_{n}",
                    "email_address": f"bench{n}@example.com",
                    "verification": {"status": "verified", "strategy": "email_code"},
                }
            ],
            "first_name": "Bench",
            "last_name": f"User {n}",
            "image_url": "https://img.example.com/x",
            "unsafe_metadata": {},
            "created_at": T0,
            "updated_at": T0 + n,
            "last_sign_in_at": T0 + n,
        },
    }


def session_payload(n: int) -> dict[str, Any]:
    user = user_payload(n)["data"]
    return {
        "object": "event",
        "type": "session.created",
        "timestamp": T0 // 1000,
        "event_attributes": {"http_request": {"client_ip": "10.0.0.1", "user_agent": USER_AGENT}},
        "data": {
            "object": "session",
            "id": f"sess_bench_{n:06d}",
            "user_id": user["id"],
            "user": user,
            "status": "active",
            "latest_activity": {
                "device_type": "desktop",
                "browser_name": "Firefox",
                "ip_address": "203.0.113.9",
                "city": "Lisbon",
                "country": "PT",
            },
            "created_at": T0 + n,
            "last_active_at": T0 + n + 1000,
            "updated_at": T0 + n + 1000,
            "expire_at": T0 + n + 86_400_000,
        },
    }


def store_events(url: str, count: int) -> list[int]:
    rows = []
    for n in range(count // 2):
        for payload in (user_payload(n), session_payload(n)):
            data = payload["data"]
            clerk_id = data["id"] if payload["type"].startswith("user.") else data["user_id"]
            rows.append((f"msg_{uuid.uuid4().hex}", payload["type"], clerk_id, Jsonb(payload)))
    with psycopg.connect(libpq_url(url)) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO webhook_events (svix_id, event_type, clerk_user_id, payload) "
            "VALUES (%s, %s, %s, %s)",
            rows,
        )
        return [row[0] for row in conn.execute("SELECT id FROM webhook_events ORDER BY id")]


def final_count(url: str) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM webhook_events WHERE status IN ('processed', 'ignored', 'failed')"
        ).fetchone()
    return int(row[0]) if row else 0


def outcome_summary(url: str) -> dict[str, int]:
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute("SELECT status, count(*) FROM webhook_events GROUP BY 1").fetchall()
        users = conn.execute("SELECT count(*) FROM users").fetchone()
        sessions = conn.execute("SELECT count(*) FROM user_sessions").fetchone()
    summary = {str(status): int(n) for status, n in rows}
    summary["users"] = int(users[0]) if users else 0
    summary["sessions"] = int(sessions[0]) if sessions else 0
    return summary


def enqueue_as_web(redis_url: str, event_ids: list[int]) -> None:
    """The web's publisher, handed the ids as the inbox hands them over (one list per commit)."""
    publisher = Publisher(Settings(redis_url=redis_url))
    publisher.start()
    commit = Settings().webhook_commit_batch
    for start in range(0, len(event_ids), commit):
        publisher.submit(event_ids[start : start + commit])
    publisher.close(timeout=60)


def enqueue_one_per_event(redis_url: str, event_ids: list[int]) -> None:
    """One `webhooks.process_event` message per event, as the sweeper sends them."""
    publisher = Celery("bench-sweeper")
    publisher.conf.update(celery_config(Settings(redis_url=redis_url)))
    with publisher.producer_or_acquire() as producer:
        for event_id in event_ids:
            publisher.send_task(
                PROCESS_EVENT, args=[event_id], producer=producer, ignore_result=True
            )
    publisher.close()


def run_worker(
    url: str, redis_url: str, event_ids: list[int], enqueue: Callable[[str, list[int]], None]
) -> float:
    """Enqueue every event, then time `cpn-sync worker` from ready until all are final."""
    enqueue(redis_url, event_ids)

    env = {key: value for key, value in os.environ.items() if not key.startswith("WORKER_")}
    env.update(DATABASE_URL=url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    env.pop("CELERY_BROKER_URL", None)
    log_path = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
    cli = str(Path(sys.executable).parent / "cpn-sync")
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [cli, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while "ready." not in log_path.read_text(errors="replace"):
            if worker.poll() is not None:
                raise SystemExit(f"worker exited:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        started = time.perf_counter()
        while final_count(url) < len(event_ids):
            if worker.poll() is not None:
                raise SystemExit(f"worker exited:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(60)
        log_path.unlink(missing_ok=True)
    return len(event_ids) / elapsed


USER_UPSERT = """
INSERT INTO users (clerk_id, email, email_verified, first_name, last_name, image_url,
                   created_at, updated_at, last_sign_in_at)
VALUES (%(clerk_id)s, %(email)s, %(verified)s, %(first_name)s, %(last_name)s, %(image_url)s,
        %(created_at)s, %(updated_at)s, %(last_sign_in_at)s)
ON CONFLICT (clerk_id) DO UPDATE SET
    email = EXCLUDED.email, email_verified = EXCLUDED.email_verified,
    first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    image_url = EXCLUDED.image_url, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, last_sign_in_at = EXCLUDED.last_sign_in_at
WHERE users.updated_at IS NULL OR users.updated_at <= EXCLUDED.updated_at
RETURNING id
"""

SESSION_UPSERT = """
INSERT INTO user_sessions (user_id, clerk_id, session_id, ip_address, user_agent, device_type,
                           browser, location_country, location_city, created_at,
                           last_active_at, expires_at, is_active)
VALUES (%(user_id)s, %(clerk_id)s, %(session_id)s, %(ip)s, %(ua)s, %(device)s, %(browser)s,
        %(country)s, %(city)s, %(created_at)s, %(last_active_at)s, %(expires_at)s, true)
ON CONFLICT (session_id) DO UPDATE SET
    last_active_at = GREATEST(user_sessions.last_active_at, EXCLUDED.last_active_at),
    ip_address = COALESCE(EXCLUDED.ip_address, user_sessions.ip_address),
    device_type = COALESCE(EXCLUDED.device_type, user_sessions.device_type)
"""


def _ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


def _user_values(data: dict[str, Any]) -> dict[str, Any]:
    address = next(
        a for a in data["email_addresses"] if a["id"] == data["primary_email_address_id"]
    )
    return {
        "clerk_id": data["id"],
        "email": address["email_address"],
        "verified": (address.get("verification") or {}).get("status") == "verified",
        "first_name": data["first_name"],
        "last_name": data["last_name"],
        "image_url": data["image_url"],
        "created_at": _ms(data["created_at"]),
        "updated_at": _ms(data["updated_at"]),
        "last_sign_in_at": _ms(data["last_sign_in_at"]),
    }


def run_plain_loop(url: str, event_ids: list[int]) -> float:
    """The floor: one transaction per event, the same reads and upserts, no framework."""
    with psycopg.connect(libpq_url(url)) as conn:
        started = time.perf_counter()
        for event_id in event_ids:
            with conn.transaction():
                row = conn.execute(
                    "SELECT event_type, payload FROM webhook_events WHERE id = %s FOR UPDATE",
                    (event_id,),
                ).fetchone()
                assert row is not None
                event_type, payload = row
                data = payload["data"]
                if event_type == "user.created":
                    conn.execute(USER_UPSERT, _user_values(data))
                else:
                    found = conn.execute(
                        "SELECT id FROM users WHERE clerk_id = %s", (data["user_id"],)
                    ).fetchone()
                    user_id = (
                        found[0]
                        if found
                        else conn.execute(USER_UPSERT, _user_values(data["user"])).fetchone()[0]
                    )  # type: ignore[index]
                    activity = data["latest_activity"]
                    conn.execute(
                        SESSION_UPSERT,
                        {
                            "user_id": user_id,
                            "clerk_id": data["user_id"],
                            "session_id": data["id"],
                            "ip": activity["ip_address"],
                            "ua": payload["event_attributes"]["http_request"]["user_agent"],
                            "device": activity["device_type"],
                            "browser": activity["browser_name"],
                            "country": activity["country"],
                            "city": activity["city"],
                            "created_at": _ms(data["created_at"]),
                            "last_active_at": _ms(data["last_active_at"]),
                            "expires_at": _ms(data["expire_at"]),
                        },
                    )
                conn.execute(
                    "UPDATE webhook_events SET status = 'processed', processed_at = now(), "
                    "attempts = attempts + 1 WHERE id = %s",
                    (event_id,),
                )
        return len(event_ids) / (time.perf_counter() - started)


def append_result(line: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    if not path.exists():
        path.write_text("# Benchmarks\n\nIndicative numbers; each line says how it was measured.\n")
    with path.open("a") as handle:
        handle.write(line + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    count = args.events - args.events % 2

    handle = None
    if os.environ.get("BENCH_DATABASE_URL"):
        admin_url = normalize_database_url(os.environ["BENCH_DATABASE_URL"])
    else:
        handle, admin_url = local.start_postgres(ROOT / ".data" / "bench-postgres")
    run_id = uuid.uuid4().hex[:8]
    names = [f"bench_workers_{run_id}_{which}" for which in ("worker", "loop", "single")]
    redis_server = local.RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    try:
        urls = [local.ensure_database(admin_url, name) for name in names]
        for url in urls:
            upgrade(url)
        redis_server.start()
        worker_ids = store_events(urls[0], count)
        loop_ids = store_events(urls[1], count)
        single_ids = store_events(urls[2], count)
        print(f"{count} events stored in each database; enqueueing and starting the worker")

        worker_rate = run_worker(urls[0], redis_server.url, worker_ids, enqueue_as_web)
        print(f"cpn-sync worker:  {worker_rate:8.0f} events/s   {outcome_summary(urls[0])}")
        loop_rate = run_plain_loop(urls[1], loop_ids)
        print(f"plain psycopg:    {loop_rate:8.0f} events/s   {outcome_summary(urls[1])}")
        single_rate = run_worker(urls[2], redis_server.url, single_ids, enqueue_one_per_event)
        print(f"one message each: {single_rate:8.0f} events/s   {outcome_summary(urls[2])}")
        ratio = worker_rate / loop_rate
        single_ratio = single_rate / loop_rate
        print(f"ratio worker / plain loop: {ratio:.2f}x")
        print(f"ratio one message per event / plain loop: {single_ratio:.2f}x")
        summary.record(
            "bench-workers",
            [
                summary.Comparison(
                    f"events applied by `cpn-sync worker` ({count} stored events, enqueued "
                    "by the web's publisher)",
                    f"{worker_rate:.0f}/s",
                    "plain psycopg loop, one transaction per event",
                    f"{loop_rate:.0f}/s",
                    ratio,
                    ">= 0.5x",
                    ratio >= 0.5,
                ),
                summary.Comparison(
                    "the same, one `process_event` message per event (sweeper, replay)",
                    f"{single_rate:.0f}/s",
                    "plain psycopg loop, one transaction per event",
                    f"{loop_rate:.0f}/s",
                    single_ratio,
                    "no goal: the cost of a message per event",
                    None,
                ),
            ],
        )

        concurrency = os.environ.get("WORKER_CONCURRENCY", "2 (default)")
        batch = os.environ.get("EVENT_BATCH_SIZE", "50 (default)")
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        load = os.getloadavg()[0]
        append_result(
            f"- bench-workers {when}: {count} events (user.created/session.created), "
            f"{os.cpu_count()} cores (load average {load:.1f}), Python "
            f"{platform.python_version()}, worker concurrency {concurrency}, event batch "
            f"{batch}: cpn-sync worker {worker_rate:.0f}/s, plain psycopg loop "
            f"(1 transaction per event) {loop_rate:.0f}/s, ratio {ratio:.2f}x; one message "
            f"per event {single_rate:.0f}/s ({single_ratio:.2f}x)"
        )
    finally:
        redis_server.stop()
        for name in names:
            local.drop_database(admin_url, name)
        if handle is not None:
            handle.cleanup()


if __name__ == "__main__":
    main()
