"""`make bench-e2e`: the whole service as the Procfile starts it (web, worker, beat, default
settings), fed at fixed rates by an open-loop generator, against two baselines of the same run.

For each rate (a realistic mix of distinct pre-signed `user.created`, `user.updated` and
`session.*` deliveries, users created before their other events; `benchmarks.e2e_load`), for
`--duration` seconds: the 2xx answers per second and their p99 (from the scheduled send, so a
late generator cannot hide latency), the freshness of every event (`processed_at` -
`received_at`, and from the client's send to `processed_at` on the same clock) as p50 / p99 /
max, the backlog (stored, not final) when sending stopped, the CPU of web, worker, beat,
PostgreSQL, Redis and the generator itself, and the PSS of web and worker. The ladder stops at
the first rate that is not sustained (freshness p99 >= 1 s, a growing backlog, or a non-2xx).

Baselines, closed-loop with wrk as `make bench-ingest` drives them: "verify + insert one row,
own commit" (the durable floor of ingest alone) and "verify + inline user upsert" (Clerk's
guide; its freshness is its latency). Then Redis's memory per million queued event ids.
Prints the table and ratios and appends a section to BENCHMARKS.md.

    python -m benchmarks.bench_e2e [--rates 250,500,1000,2000,3000] [--duration 30] [--quick]

BENCH_DATABASE_URL: a PostgreSQL server it may create (and drop) databases on; default the
embedded one under .data/bench-postgres. Redis: fresh embedded servers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from benchmarks import bench_ingest, e2e_redis, e2e_report
from benchmarks.bench_ingest import SECRET, Result
from benchmarks.e2e_stack import Stack
from benchmarks.e2e_step import Step, run_step
from cpn_sync import local
from cpn_sync.settings import normalize_database_url
from db.migrate import upgrade
from webhooks.samples import sample_event

ROOT = Path(__file__).resolve().parent.parent
# The service runs with its defaults: none of its tuning variables may leak in from outside.
TUNING = ("WEB_CONCURRENCY", "WORKER_CONCURRENCY", "WORKER_QUEUES", "EVENT_BATCH_SIZE",
          "WEBHOOK_COMMIT_BATCH", "WEBHOOK_INBOX_WRITERS", "WEBHOOK_MAX_PENDING", "DB_POOL_SIZE",
          "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR", "LOG_LEVEL")  # fmt: skip


@contextlib.contextmanager
def databases(count: int) -> Iterator[tuple[str, list[str]]]:
    """`count` fresh migrated databases; answers the admin URL too (the PostgreSQL port)."""
    handle = None
    if os.environ.get("BENCH_DATABASE_URL"):
        admin = normalize_database_url(os.environ["BENCH_DATABASE_URL"])
    else:
        handle, admin = local.start_postgres(ROOT / ".data" / "bench-postgres")
    names = [f"cpn_bench_e2e_{uuid.uuid4().hex[:8]}_{n}" for n in range(count)]
    try:
        urls = [local.ensure_database(admin, name) for name in names]
        for url in urls:
            upgrade(url)
        yield admin, urls
    finally:
        for name in names:
            with contextlib.suppress(Exception):
                local.drop_database(admin, name)
        if handle is not None:
            handle.cleanup()


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TUNING}
    env.update(CLERK_WEBHOOK_SECRET=SECRET, LOG_FORMAT="json")
    return env


def ladder(args: argparse.Namespace, database_url: str, pg_port: int, workdir: Path) -> list[Step]:
    redis = local.RedisServer(workdir / "redis").start()  # appendonly, as `make run`'s
    assert redis.process is not None
    env = base_env()
    env.update(
        DATABASE_URL=database_url, REDIS_URL=redis.url, PORT=str(local.free_port()),
        DATA_DIR=str(workdir / "data"), WORKER_METRICS_PORT=str(local.free_port()),
    )  # fmt: skip
    stack = Stack(env, workdir)
    steps: list[Step] = []
    known: list[str] = []
    rng = random.Random(19)
    ports = {"postgres": pg_port, "redis": redis.port}
    try:
        stack.start()
        for rate in args.rates:
            print(f"rate {rate}/s for {args.duration} s", flush=True)
            step = run_step(stack, database_url, redis.process.pid, ports, rate, args.duration,
                            args.senders, known, rng, workdir, SECRET)  # fmt: skip
            steps.append(step)
            print("  " + e2e_report.step_line(step), flush=True)
            if not step.sustained and not args.keep_going:
                break
        if args.profile:
            profile(args, stack, database_url, redis.process.pid, ports, known, rng, workdir)
    finally:
        stack.stop()
        redis.stop()
    return steps


def profile(
    args: argparse.Namespace, stack: Stack, database_url: str, redis_pid: int,
    ports: dict[str, int], known: list[str], rng: random.Random, workdir: Path,
) -> None:  # fmt: skip
    """One more step at --profile-rate with py-spy on the worker's processes (not in the table:
    the profiler takes CPU from the run it measures)."""
    args.profile.mkdir(parents=True, exist_ok=True)
    output = args.profile / "worker.txt"
    spy = subprocess.Popen(
        [str(bench_ingest.BIN / "py-spy"), "record", "--pid", str(stack.pid("worker")),
         "--subprocesses", "--nonblocking", "--rate", "100", "--format", "raw",
         "--duration", str(int(args.duration)), "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(1)
    step = run_step(stack, database_url, redis_pid, ports, args.profile_rate, args.duration,
                    args.senders, known, rng, workdir, SECRET)  # fmt: skip
    spy.wait(120)
    print(f"profiled step: {e2e_report.step_line(step)}")
    if output.exists():
        print(f"\n# py-spy, worker at {args.profile_rate}/s\n"
              f"{bench_ingest.summarize_profile(output, top=30)}", flush=True)  # fmt: skip


def baselines(args: argparse.Namespace, database_url: str, workdir: Path) -> list[Result]:
    """The two servers of bench-ingest, each its best of `--baseline-rounds` (interleaved)."""
    wrk = bench_ingest.ensure_wrk()
    chosen = [s for s in bench_ingest.servers() if s.name in ("insert-one", "inline-upsert")]
    # --quick: one connection, a smoke test of the path rather than a maximum.
    connections, threads = (1, 1) if args.quick else (32, 2)
    options = argparse.Namespace(warmup=2000, threads=threads, connections=connections,
                                 duration=args.baseline_duration, profile=None)  # fmt: skip
    count = 5000 * args.baseline_duration + options.warmup
    bodies = [orjson.dumps(sample_event("user.created")) for _ in range(count)]
    redis = local.RedisServer(workdir / "redis-baselines", appendonly=False).start()
    env = base_env()
    env.update(DATABASE_URL=database_url, REDIS_URL=redis.url, WEB_CONCURRENCY="2",
               DATA_DIR=str(workdir / "data-baselines"))  # fmt: skip
    best: dict[str, Result] = {}
    try:
        for round_number in range(args.baseline_rounds):
            for server in chosen:
                print(f"baseline {server.name}, round {round_number + 1}", flush=True)
                result = bench_ingest.measure(server, wrk, env, bodies, options,
                                              workdir / f"baseline-{round_number}")  # fmt: skip
                print(f"  {result.per_second:,.0f}/s, p99 {result.p99_ms:.1f} ms", flush=True)
                if server.name not in best or result.per_second > best[server.name].per_second:
                    best[server.name] = result
    finally:
        redis.stop()
    return [best[server.name] for server in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--rates",
        default="250,500,1000,2000,3000,4000,6000",
        help="events/s, comma-separated; the ladder stops at the first failure",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per rate")
    parser.add_argument("--senders", type=int, default=2, help="generator processes")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run every rate (small batches can make a low rate the hard one)",
    )
    parser.add_argument("--baseline-duration", type=int, default=15)
    parser.add_argument("--baseline-rounds", type=int, default=2, help="0: no baselines")
    parser.add_argument("--redis-ids", type=int, default=1_000_000)
    parser.add_argument("--profile", type=Path, help="py-spy the worker into this directory")
    parser.add_argument("--profile-rate", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny rates, 3 s")
    parser.add_argument("--no-append", action="store_true", help="print only")
    parser.add_argument("--note", default="")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    args.rates = [int(rate) for rate in args.rates.split(",")]
    if args.quick:
        args.rates, args.duration = [50, 100], 3.0
        args.baseline_duration, args.baseline_rounds, args.redis_ids = 1, 1, 20_000
    workdir = Path(tempfile.mkdtemp(prefix="cpn-bench-e2e-"))
    try:
        with databases(2) as (admin, (e2e_url, baseline_url)):
            pg_port = urlsplit(admin.replace("+psycopg", "")).port or 5432
            floors: list[Result] = []
            if args.baseline_rounds:
                try:
                    floors = baselines(args, baseline_url, workdir)
                except (Exception, SystemExit) as error:  # the ladder is still worth running
                    print(f"baselines failed: {error!r}", flush=True)
            steps = ladder(args, e2e_url, pg_port, workdir)
        print("measuring Redis memory per queued event id", flush=True)
        memory = e2e_redis.per_million(args.redis_ids, max(args.redis_ids // 10, 1000))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = e2e_report.report(steps, floors, memory, args)
    print("\n" + text)
    if not args.quick and not args.no_append:
        with args.output.open("a") as handle:
            handle.write("\n" + text)
        print(f"appended to {args.output}")
        e2e_report.record_summary(steps, floors)


if __name__ == "__main__":
    main()
