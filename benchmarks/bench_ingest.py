"""`make bench-ingest`: cpn-sync's webhook endpoint against three baselines, driven by wrk.

Every server runs as the Procfile runs `web` (uvicorn, $WEB_CONCURRENCY=2 workers, same options)
against real PostgreSQL and Redis; wrk keeps 32 connections busy with distinct pre-signed
user.created deliveries (re-signed just before each run, so they are inside the 5-minute
tolerance). Tables are emptied between runs. Every server is measured in each of three rounds
(interleaved, so a slow spell of the machine does not fall on one server only) and keeps its
best round. Prints events/s, p50 and p99 of each server and the ratios, and appends them to
BENCHMARKS.md.

Servers: BENCH_DATABASE_URL (a server the benchmark may create a database on) and
BENCH_REDIS_URL; without them an embedded PostgreSQL (.data/bench-postgres) and a new
embedded Redis are started.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psycopg

from benchmarks import summary
from cpn_sync import local
from cpn_sync.procfile import read_procfile
from cpn_sync.settings import libpq_url, normalize_database_url
from db.migrate import upgrade
from webhooks.samples import sample_event
from webhooks.send import new_svix_id, signed_headers

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).with_name("requests.lua")
SECRET = "whsec_YmVuY2htYXJrLXNpZ25pbmctc2VjcmV0LWZvci1jcG4tc3luYw=="  # noqa: S105 - a test value
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Server:
    name: str
    label: str
    command: list[str]
    env: dict[str, str]


@dataclass
class Result:
    server: Server
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    stored: int | None
    cpu_seconds: float

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU per request: steadier than events/s when other work shares the cores."""
        return self.cpu_seconds / max(self.requests, 1) * 1e6

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def servers() -> list[Server]:
    web = read_procfile()["web"]
    baseline = [str(BIN / "python"), "-m", "benchmarks.serve_baseline"]
    return [
        Server(
            "cpn-sync",
            "cpn-sync (verify, group commit, batched enqueue)",
            ["sh", "-c", f"exec {web}"],
            {},
        ),
        Server(
            "cpn-sync-no-group-commit",
            "cpn-sync, one commit per request (WEBHOOK_COMMIT_BATCH=1, 8 writers)",
            ["sh", "-c", f"exec {web}"],
            {"WEBHOOK_COMMIT_BATCH": "1", "WEBHOOK_INBOX_WRITERS": "8"},
        ),
        Server("bare", "bare Starlette: read body, 204", [*baseline, "bare"], {}),
        Server("insert-one", "verify + insert one row, own commit", [*baseline, "insert_one"], {}),
        Server(
            "inline-upsert",
            "verify + inline user upsert (Clerk guide)",
            [*baseline, "inline_upsert"],
            {},
        ),
    ]


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of a process and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            times[pid] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        current = frontier.pop()
        for pid, parent in parents.items():
            if parent == current and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(times.get(pid, 0.0) for pid in tree)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: apt-get install -y wrk", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed (the Debian package `wrk`)")
    return found


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh, migrated database on BENCH_DATABASE_URL's server or the embedded one."""
    handle = None
    if os.environ.get("BENCH_DATABASE_URL"):
        admin = normalize_database_url(os.environ["BENCH_DATABASE_URL"])
    else:
        handle, admin = local.start_postgres(ROOT / ".data" / "bench-postgres")
    name = f"cpn_bench_{os.getpid()}"
    local.drop_database(admin, name)
    url = local.ensure_database(admin, name)
    upgrade(url)
    try:
        yield url
    finally:
        local.drop_database(admin, name)
        if handle is not None:
            handle.cleanup()


@contextlib.contextmanager
def broker() -> Iterator[str]:
    if os.environ.get("BENCH_REDIS_URL"):
        yield os.environ["BENCH_REDIS_URL"]
        return
    server = local.RedisServer(Path(tempfile.mkdtemp(prefix="cpn-bench-redis-"))).start()
    try:
        yield server.url
    finally:
        server.stop()


def write_requests(bodies: list[bytes], directory: Path, threads: int) -> None:
    """Sign every body now and split them over one file per wrk thread."""
    files = [(directory / f"requests-{n}.tsv").open("w") for n in range(threads)]
    try:
        for index, body in enumerate(bodies):
            headers = signed_headers(SECRET, body, svix_id=new_svix_id())
            files[index % threads].write(
                f"{headers['svix-id']}\t{headers['svix-timestamp']}\t"
                f"{headers['svix-signature']}\t{body.decode()}\n"
            )
    finally:
        for handle in files:
            handle.close()


def reset(database_url: str, broker_url: str) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        connection.execute("TRUNCATE webhook_events, users RESTART IDENTITY CASCADE")
        connection.execute("VACUUM ANALYZE webhook_events")
        connection.execute("CHECKPOINT")
    import redis

    redis.Redis.from_url(broker_url).delete("webhooks")  # nobody consumes during the runs


def answer_counts(url: str) -> dict[str, int]:
    """cpn-sync's own count of `accepted` and `duplicate` answers (its /metrics, summed over
    its worker processes), to check against the rows stored."""
    base = url.rsplit("/webhooks/", 1)[0]
    text = httpx.get(f"{base}/metrics", timeout=10).text
    counts = {"accepted": 0, "duplicate": 0}
    for line in text.splitlines():
        for outcome, metric in (
            ("accepted", "cpn_webhook_events_accepted_total "),
            ("duplicate", "cpn_webhook_events_duplicate_total "),
        ):
            if line.startswith(metric):
                counts[outcome] += int(float(line.split()[-1]))
    return counts


def count_stored(database_url: str, server: Server) -> int | None:
    table = {"inline-upsert": "users", "bare": None}.get(server.name, "webhook_events")
    if table is None:
        return None
    with psycopg.connect(libpq_url(database_url)) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


@contextlib.contextmanager
def running(
    server: Server, env: dict[str, str], log_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = local.free_port()
    child_env = {**env, **server.env, "PORT": str(port)}
    child_env["PATH"] = os.pathsep.join([str(BIN), child_env.get("PATH", os.defpath)])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server.command, env=child_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{server.name} exited:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                # Any answer means uvicorn is up; give both workers time to finish startup.
                httpx.get(f"{url}/healthz", timeout=1)
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{server.name} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        time.sleep(2)
        yield url, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def drive(
    wrk: str, url: str, directory: Path, *, seconds: int, threads: int, connections: int
) -> dict[str, int]:
    completed = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
         "-s", str(LUA), url, "--", str(directory)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    for line in completed.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            summary: dict[str, int] = json.loads(line.removeprefix("WRK_JSON "))
            return summary
    raise SystemExit(f"no summary from wrk:\n{completed.stdout}\n{completed.stderr}")


def measure(
    server: Server,
    wrk: str,
    env: dict[str, str],
    bodies: list[bytes],
    args: argparse.Namespace,
    workdir: Path,
) -> Result:
    reset(env["DATABASE_URL"], env["REDIS_URL"])
    directory = workdir / server.name
    directory.mkdir(parents=True)
    with running(server, env, workdir / f"{server.name}.log") as (url, process):
        warmup = directory / "warmup"
        warmup.mkdir()
        write_requests(bodies[: args.warmup], warmup, args.threads)
        drive(wrk, url, warmup, seconds=2, threads=args.threads, connections=args.connections)
        write_requests(bodies[args.warmup :], directory, args.threads)
        stored_before = count_stored(env["DATABASE_URL"], server)
        profiler = profile(process.pid, args, server) if args.profile else None
        cpu_before = tree_cpu_seconds(process.pid)
        summary = drive(
            wrk,
            url,
            directory,
            seconds=args.duration,
            threads=args.threads,
            connections=args.connections,
        )
        cpu_seconds = tree_cpu_seconds(process.pid) - cpu_before
        if profiler is not None:
            profiler.wait(60)
        answers = answer_counts(url) if server.name.startswith("cpn-sync") else None
    stored = count_stored(env["DATABASE_URL"], server)
    if answers is not None:
        # No loss: every "accepted" answer is a row (the warm-up's repeats answer "duplicate").
        print(f"  answers {answers}, rows {stored}", flush=True)
        if answers["accepted"] != stored:
            print("  WARNING: the accepted answers do not match the rows stored", flush=True)
    if stored is not None and stored_before is not None:
        stored -= stored_before
    return Result(
        server,
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        non_2xx=summary["non_2xx"],
        socket_errors=summary["socket_errors"],
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        stored=stored,
        cpu_seconds=cpu_seconds,
    )


def profile(pid: int, args: argparse.Namespace, server: Server) -> subprocess.Popen[bytes]:
    """py-spy over the server and its worker processes for the run (collapsed stacks)."""
    args.profile.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(BIN / "py-spy"), "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
         "--gil", "--duration", str(args.duration), "--rate", "200", "--format", "raw",
         "--output", str(args.profile / f"{server.name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def summarize_profile(path: Path, top: int = 25) -> str:
    """Where the samples were: by innermost frame, and by a few frames that own the work."""
    leaf: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    rows = [
        f"{count / total:6.1%}  {frame}"
        for frame, count in sorted(leaf.items(), key=lambda i: -i[1])[:top]
    ]
    heavy = [
        f"{count / total:6.1%}  {frame}"
        for frame, count in sorted(inclusive.items(), key=lambda i: -i[1])[: top * 2]
    ]
    return "innermost frames:\n" + "\n".join(rows) + "\n\ninclusive:\n" + "\n".join(heavy)


def report(results: list[Result], args: argparse.Namespace, events: int) -> str:
    by_name = {result.server.name: result for result in results}
    ours = by_name["cpn-sync"]
    lines = [
        f"## bench-ingest {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{os.cpu_count()} cores; uvicorn with 2 workers for every server; wrk {args.threads} "
        f"threads, {args.connections} connections, {args.duration} s per server after a 2 s "
        f"warm-up, {args.rounds} interleaved rounds, each server's best round shown; {events} "
        f"distinct pre-signed user.created deliveries. {args.note}".rstrip(),
        "",
        "| server | events/s | p50 ms | p99 ms | server CPU µs/event | non-2xx | socket errors "
        "| rows stored |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.server.label} | {result.per_second:,.0f} | {result.p50_ms:.2f} | "
            f"{result.p99_ms:.2f} | {result.cpu_us_per_request:,.0f} | {result.non_2xx} | "
            f"{result.socket_errors} | "
            f"{'-' if result.stored is None else result.stored} |"
        )
    lines.append("")
    for name in ("insert-one", "inline-upsert", "bare", "cpn-sync-no-group-commit"):
        if name in by_name:
            ratio = ours.per_second / by_name[name].per_second
            lines.append(f"- cpn-sync / {by_name[name].server.label}: **{ratio:.2f}x**")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per server and round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="every server is measured once per round (interleaved); each keeps its best round",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=0,
        help="distinct events (default: enough for the duration, at least 5000)",
    )
    parser.add_argument("--warmup", type=int, default=2000, help="events used by the warm-up")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated server names")
    parser.add_argument("--note", default="", help="appended to the report's first line")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--profile", type=Path, help="py-spy each server into this directory")
    args = parser.parse_args()
    # Enough that no delivery repeats within a run (a repeat is a cheap duplicate answer).
    events = args.events or max(5000, 10_000 * args.duration)
    wrk = ensure_wrk()
    chosen = [s for s in servers() if not args.only or s.name in args.only.split(",")]
    print(f"building {events + args.warmup} sample events", flush=True)
    bodies = [orjson.dumps(sample_event("user.created")) for _ in range(events + args.warmup)]
    workdir = Path(tempfile.mkdtemp(prefix="cpn-bench-ingest-"))
    results = []
    try:
        with database() as database_url, broker() as broker_url:
            env = dict(os.environ)
            env.update(
                DATABASE_URL=database_url, REDIS_URL=broker_url, CLERK_WEBHOOK_SECRET=SECRET,
                WEB_CONCURRENCY="2", LOG_LEVEL="INFO", LOG_FORMAT="json",
            )  # fmt: skip
            env.pop("CELERY_BROKER_URL", None)
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            best: dict[str, Result] = {}
            for round_number in range(1, args.rounds + 1):
                for server in chosen:
                    print(
                        f"round {round_number}: measuring {server.name} for {args.duration} s",
                        flush=True,
                    )
                    result = measure(server, wrk, env, bodies, args, workdir / str(round_number))
                    print(
                        f"  {result.per_second:,.0f} events/s, p50 {result.p50_ms:.2f} ms, "
                        f"p99 {result.p99_ms:.2f} ms, {result.cpu_us_per_request:,.0f} µs "
                        f"CPU/event, non-2xx {result.non_2xx}, stored {result.stored}",
                        flush=True,
                    )
                    if result.requests > events:
                        print(f"  warning: {result.requests} requests but only {events} distinct "
                              "deliveries; repeats were answered as duplicates")  # fmt: skip
                    if server.name not in best or result.per_second > best[server.name].per_second:
                        best[server.name] = result
            results = [best[server.name] for server in chosen]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.profile:
        for result in results:
            path = args.profile / f"{result.server.name}.txt"
            if path.exists():
                print(f"\n# py-spy: {result.server.name}\n{summarize_profile(path)}")
    text = report(results, args, events)
    print("\n" + text)
    record_summary(results)
    if "cpn-sync" in {r.server.name for r in results}:
        with args.output.open("a") as handle:
            handle.write("\n" + text)
        print(f"appended to {args.output}")


def record_summary(results: list[Result]) -> None:
    """The figures the issue sets goals for, for the table at the top of BENCHMARKS.md."""
    by_name = {result.server.name: result for result in results}
    ours = by_name.get("cpn-sync")
    if ours is None:
        return
    comparisons = []
    for name, goal in (("insert-one", 1.0), ("inline-upsert", 5.0)):
        if name in by_name:
            base = by_name[name]
            ratio = ours.per_second / base.per_second
            comparisons.append(
                summary.Comparison(
                    "cpn-sync events/s (wrk, 32 connections)",
                    f"{ours.per_second:.0f}/s",
                    base.server.label,
                    f"{base.per_second:.0f}/s",
                    ratio,
                    f">= {goal:.1f}x",
                    ratio >= goal,
                )
            )
    if "insert-one" in by_name:
        base = by_name["insert-one"]
        comparisons.append(
            summary.Comparison(
                "cpn-sync p99 latency",
                f"{ours.p99_ms:.1f} ms",
                f"{base.server.label} (p99)",
                f"{base.p99_ms:.1f} ms",
                ours.p99_ms / base.p99_ms,
                "p99 < 50 ms",
                ours.p99_ms < 50,
            )
        )
    if comparisons:  # a run without the baselines leaves the last full run's figures
        summary.record("bench-ingest", comparisons)


if __name__ == "__main__":
    main()
