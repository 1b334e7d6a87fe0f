"""`make bench-cpn`: the full CPN recompute through a real worker, against the SQL floor.

Loads N users with M interactions (one INSERT ... SELECT over generate_series), then in the
same run measures:

- floor: one `INSERT ... SELECT ... GROUP BY` of the same figures into a copy of
  `user_cpn_results` (same indexes, CHECKs and foreign key), committed: the least any
  recompute must cost; best of two;
- full recompute: `cpn.recompute_all` sent to `cpn-sync worker` started as the Procfile starts
  it, timed until every chunk has finished and every user has a row; best of two, each into an
  empty `user_cpn_results` (measured as the floor is);
- steady state: the same again when nothing changed (no row written);

and samples the worker's memory (all its processes summed) every 20 ms. Prints the figures and
appends them to BENCHMARKS.md. Timings on a shared machine are indicative only.

    python -m benchmarks.bench_cpn [--users 20000] [--interactions 1000000]

DATABASE: BENCH_DATABASE_URL or TEST_DATABASE_URL (a server it may create a database on), else
the embedded PostgreSQL under .data/bench-postgres. Redis: a private embedded one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy import Engine, text

from benchmarks import summary
from cpn_sync import local
from cpn_sync.settings import normalize_database_url
from db.engine import make_engine
from db.migrate import upgrade
from tests.worker_process import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_FILE = ROOT / "BENCHMARKS.md"

LOAD_USERS = (
    "INSERT INTO users (clerk_id, email) "
    "SELECT 'user_bench_' || g, 'bench' || g || '@example.test' FROM generate_series(1, :users) g"
)
# Interleaved as an app writes them over time: each user's rows spread over the whole table.
LOAD_INTERACTIONS = """
INSERT INTO user_interactions (user_id, clerk_id, interaction_date, cost, time_minutes, nuts)
SELECT u.id, u.clerk_id, DATE '2025-01-01' + (g % 300), round((random() * 200)::numeric, 2),
       15 * (1 + g % 96), g % 6
FROM generate_series(0, :interactions - 1) g JOIN users u ON u.id = 1 + g % :users
"""
FLOOR = """
INSERT INTO floor_results (user_id, clerk_id, total_interactions, total_cost, total_time_hours,
    total_nuts, average_cost_per_nut, average_cost_per_hour, average_nuts_per_hour,
    calculation_period_start, calculation_period_end)
SELECT user_id, min(clerk_id), count(*), sum(cost), round(sum(time_minutes) / 60.0, 2),
       sum(nuts), round(sum(cost) / nullif(sum(nuts), 0), 2),
       round(sum(cost) * 60 / sum(time_minutes), 2), round(sum(nuts) * 60.0 / sum(time_minutes), 3),
       min(interaction_date), max(interaction_date)
FROM user_interactions GROUP BY user_id
"""


class MemorySampler(threading.Thread):
    """Peak memory of the worker, all its processes summed, perturbing the run little.

    RSS: each process's own high-water mark (VmHWM, kept by the kernel, so no peak is missed),
    summed. PSS (which counts pages shared after fork once) has no high-water mark: it is
    sampled every 100 ms; reading it walks the page tables, and sampling more often took a
    visible share of the two cores from the run being measured.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.idle_rss = self.idle_pss = self.peak_pss = 0
        self.high_water: dict[int, int] = {}
        self.stopping = threading.Event()

    @property
    def peak_rss(self) -> int:
        return sum(self.high_water.values())

    @property
    def largest_process_rss(self) -> int:
        return max(self.high_water.values(), default=0)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(0.1)
        self.sample()

    def sample(self) -> None:
        rss = pss = 0
        try:
            for process in [self.root, *self.root.children(recursive=True)]:
                info = process.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
                self.high_water[process.pid] = max(
                    self.high_water.get(process.pid, 0), high_water_mark(process.pid)
                )
        except (psutil.Error, OSError):
            return  # a child exiting mid-sample
        if not self.idle_rss:
            self.idle_rss, self.idle_pss = rss, pss
        self.peak_pss = max(self.peak_pss, pss)


def high_water_mark(pid: int) -> int:
    """The process's peak resident set size so far, in bytes (Linux: VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def wait_for(condition: Callable[[], bool], timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the recompute did not finish")
        time.sleep(0.02)


def load(engine: Engine, users: int, interactions: int) -> float:
    def run() -> None:
        with engine.begin() as connection:
            connection.execute(text(LOAD_USERS), {"users": users})
            connection.execute(
                text(LOAD_INTERACTIONS), {"users": users, "interactions": interactions}
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))

    return timed(run)


def floor_seconds(engine: Engine) -> float:
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE floor_results (LIKE user_cpn_results "
                "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"
            )
        )
        # LIKE copies no foreign key; the real table checks one on every row.
        connection.execute(
            text("ALTER TABLE floor_results ADD FOREIGN KEY (user_id) REFERENCES users (id)")
        )
    best = float("inf")
    for _ in range(2):
        with engine.begin() as connection:
            connection.execute(text("TRUNCATE floor_results"))

        def insert_and_commit() -> None:
            with engine.begin() as connection:
                connection.execute(text(FLOOR))

        best = min(best, timed(insert_and_commit))
    return best


def chunks_done(worker: WorkerProcess) -> int:
    """Chunks the worker finished: each logs one `cpn.chunk_recomputed` line. Counted without
    parsing the log, as this runs every 20 ms beside the work being timed."""
    return worker.log.count('"event":"cpn.chunk_recomputed"')


def recompute_all(worker: WorkerProcess, expected_chunks: int, engine: Engine, users: int) -> float:
    from cpn_sync.task_contract import CPN_RECOMPUTE_ALL
    from workers.app import app

    def rows() -> int:
        with engine.connect() as connection:
            count: int = connection.execute(
                text("SELECT count(*) FROM user_cpn_results")
            ).scalar_one()
            return count

    done_before = chunks_done(worker)

    def run() -> None:
        app.send_task(CPN_RECOMPUTE_ALL)
        wait_for(lambda: chunks_done(worker) - done_before >= expected_chunks)

    seconds = timed(run)
    if rows() < users:
        raise RuntimeError(f"only {rows()} of {users} users have a result")
    if any(line.get("level") == "error" for line in worker.json_lines()):
        raise RuntimeError(f"the worker logged an error:\n{worker.log[-4000:]}")
    return seconds


@dataclass
class Figures:
    users: int
    interactions: int
    load_s: float
    floor_s: float
    full_s: float
    steady_s: float
    idle_rss: int
    idle_pss: int
    peak_rss: int
    largest_process_rss: int
    peak_pss: int
    chunk_size: int
    concurrency: str
    version: str

    def lines(self) -> list[str]:
        mib = 1024 * 1024
        return [
            f"load                               {self.load_s:8.2f} s",
            f"floor (1 INSERT..SELECT..GROUP BY) {self.floor_s:8.3f} s",
            f"full recompute via worker          {self.full_s:8.3f} s   "
            f"{self.full_s / self.floor_s:.2f}x floor (goal <= 1.5x)",
            f"steady state (nothing changed)     {self.steady_s:8.3f} s   "
            f"{self.steady_s / self.floor_s:.2f}x floor",
            f"worker memory, all processes summed: peak RSS {self.peak_rss / mib:.0f} MiB, "
            f"PSS {self.peak_pss / mib:.0f} MiB (goal < 250 MB); idle before the run: "
            f"RSS {self.idle_rss / mib:.0f} MiB, PSS {self.idle_pss / mib:.0f} MiB; the largest "
            f"process peaked at RSS {self.largest_process_rss / mib:.0f} MiB",
        ]

    def row(self) -> str:
        mib = 1024 * 1024
        setup = (
            f"{self.users:,} users, {self.interactions:,} interactions, chunks of "
            f"{self.chunk_size}, worker concurrency {self.concurrency}, PostgreSQL {self.version}"
        )
        result = (
            f"floor {self.floor_s:.3f} s; full {self.full_s:.3f} s "
            f"({self.full_s / self.floor_s:.2f}x); steady {self.steady_s:.3f} s "
            f"({self.steady_s / self.floor_s:.2f}x); worker peak RSS {self.peak_rss / mib:.0f} "
            f"MiB, PSS {self.peak_pss / mib:.0f} MiB (idle {self.idle_rss / mib:.0f} / "
            f"{self.idle_pss / mib:.0f} MiB)"
        )
        return f"| {dt.date.today()} | bench-cpn | {setup} | {result} |"


def measure(database_url: str, users: int, interactions: int, redis_url: str) -> Figures:
    engine = make_engine(database_url)
    try:
        upgrade(database_url)
        print(f"loading {users:,} users, {interactions:,} interactions ...", flush=True)
        load_s = load(engine, users, interactions)
        with engine.connect() as connection:
            version = str(connection.execute(text("SHOW server_version")).scalar_one())
        floor_s = floor_seconds(engine)

        # The worker is configured by the environment only, as the Procfile starts it.
        os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url, LOG_LEVEL="INFO")
        from cpn_sync.settings import get_settings

        get_settings.cache_clear()
        chunk_size = get_settings().cpn_chunk_size
        chunks = -(-users // chunk_size)
        with WorkerProcess() as worker:
            assert worker.process is not None
            sampler = MemorySampler(worker.process.pid)
            sampler.start()
            full_s = float("inf")
            for _ in range(2):
                with engine.begin() as connection:
                    connection.execute(text("TRUNCATE user_cpn_results"))
                full_s = min(full_s, recompute_all(worker, chunks, engine, users))
            steady_s = recompute_all(worker, chunks, engine, users)
            sampler.stopping.set()
            sampler.join()
        return Figures(
            users, interactions, load_s, floor_s, full_s, steady_s, sampler.idle_rss,
            sampler.idle_pss, sampler.peak_rss, sampler.largest_process_rss, sampler.peak_pss,
            chunk_size,
            worker.env["WORKER_CONCURRENCY"], version,
        )  # fmt: skip
    finally:
        engine.dispose()


def append_row(row: str) -> None:
    if not BENCHMARKS_FILE.exists():
        BENCHMARKS_FILE.write_text(
            "# Benchmarks\n\nIndicative figures: one row per run of a `make bench-*` target.\n\n"
            "| date | benchmark | set-up | result |\n|---|---|---|---|\n"
        )
    with BENCHMARKS_FILE.open("a") as handle:
        handle.write(row + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    args = parser.parse_args()

    server_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    pg_handle = None
    if server_url:
        admin_url = normalize_database_url(server_url)
    else:
        pg_handle, admin_url = local.start_postgres(ROOT / ".data" / "bench-postgres")
    name = f"cpn_bench_{uuid.uuid4().hex[:8]}"
    redis = local.RedisServer(Path(tempfile.mkdtemp(prefix="cpn-bench-redis-")), appendonly=False)
    try:
        redis.start()
        database_url = local.ensure_database(admin_url, name)
        figures = measure(database_url, args.users, args.interactions, redis.url)
    finally:
        redis.stop()
        local.drop_database(admin_url, name)
        if pg_handle is not None:
            pg_handle.cleanup()
    print("\n".join(figures.lines()))
    append_row(figures.row())
    mib = 1024 * 1024
    summary.record(
        "bench-cpn",
        [
            summary.Comparison(
                f"full recompute through the worker ({args.users} users, "
                f"{args.interactions} interactions)",
                f"{figures.full_s:.2f} s",
                "one INSERT ... SELECT ... GROUP BY",
                f"{figures.floor_s:.2f} s",
                figures.full_s / figures.floor_s,
                "<= 1.5x",
                figures.full_s / figures.floor_s <= 1.5,
            ),
            summary.Comparison(
                "worker peak memory, all processes (PSS; RSS counts shared pages per process)",
                f"{figures.peak_pss / mib:.0f} MiB PSS, {figures.peak_rss / mib:.0f} MiB RSS "
                f"(largest process {figures.largest_process_rss / mib:.0f} MiB RSS)",
                "the same worker idle, before the run",
                f"{figures.idle_pss / mib:.0f} MiB PSS",
                figures.peak_pss / max(figures.idle_pss, 1),
                "< 250 MB",
                figures.peak_pss < 250_000_000,
            ),
        ],
    )


if __name__ == "__main__":
    main()
