"""One step of bench-e2e: a fixed rate for a fixed time against the running stack, and what it
measured (answers, freshness of every event, backlog, CPU by part, PSS, connections)."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from benchmarks import e2e_stack
from benchmarks.e2e_load import plan
from benchmarks.e2e_stack import CpuMeter, PssSampler, Stack

WARM_SECONDS = 5.0  # the CPU window starts this long after the first delivery
DRAIN_TIMEOUT_SECONDS = 120.0


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class Step:
    rate: int
    seconds: float
    sent: int = 0
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    answer_p50: float = 0.0
    answer_p99: float = 0.0
    late_p99: float = 0.0  # the generator's own lateness: sent - scheduled
    stored: int = 0
    fresh: dict[str, float] = field(default_factory=dict)  # processed_at - received_at
    visible: dict[str, float] = field(default_factory=dict)  # processed_at - client send
    backlog_end: int = 0
    backlog_samples: list[tuple[float, int]] = field(default_factory=list)
    drain_seconds: float = 0.0
    unfinished: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # the step's rows by status
    cpu: dict[str, float] = field(default_factory=dict)  # cores used, steady window
    generator_cores: float = 0.0
    pss: dict[str, int] = field(default_factory=dict)
    connections: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def answered_per_second(self) -> float:
        return self.ok / self.seconds

    @property
    def backlog_slope(self) -> float:
        """Events per second the backlog grew by over the second half of the step."""
        half = [s for s in self.backlog_samples if s[0] >= self.seconds / 2]
        if len(half) < 2:
            return 0.0
        (t0, b0), (t1, b1) = half[0], half[-1]
        return (b1 - b0) / max(t1 - t0, 1e-9)

    @property
    def sustained(self) -> bool:
        """Freshness p99 under 1 s both ways, every delivery answered 2xx, and the backlog
        neither growing nor above a second's worth of events when sending stopped."""
        return (
            self.ok == self.sent
            and self.unfinished == 0
            and self.fresh.get("p99", 99) < 1.0
            and self.visible.get("p99", 99) < 1.0
            and self.backlog_end <= self.rate
            and self.backlog_slope < 0.05 * self.rate
        )


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": max(values, default=float("nan")),
    }


def connections(stack: Stack, ports: dict[str, int]) -> dict[str, dict[str, int]]:
    """TCP connections of each process of web, worker and beat to PostgreSQL and Redis."""
    found: dict[str, dict[str, int]] = {}
    for part in ("web", "worker", "beat"):
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(stack.pid(part))
            for process in [root, *root.children(recursive=True)]:
                counts = dict.fromkeys(ports, 0)
                # psutil 6 renamed connections() (the dev group's floor is 5.9).
                listing = getattr(process, "net_connections", None) or process.connections
                for conn in listing(kind="tcp"):
                    for server, port in ports.items():
                        if conn.raddr and conn.raddr.port == port:
                            counts[server] += 1
                found[f"{part} {process.pid}"] = counts
    return found


def run_step(
    stack: Stack,
    database_url: str,
    redis_pid: int,
    ports: dict[str, int],
    rate: int,
    seconds: float,
    senders: int,
    known: list[str],
    rng: random.Random,
    workdir: Path,
    secret: str,
) -> Step:
    step = Step(rate, seconds)
    deliveries = plan(rate, seconds, known, rng)
    step.sent = len(deliveries)
    host, port = "127.0.0.1", int(stack.url.split(":")[2].split("/")[0])
    processes = []
    for n in range(senders):
        spec = {"host": host, "port": port, "secret": secret, "deliveries": deliveries[n::senders]}
        (workdir / f"plan-{rate}-{n}.json").write_bytes(orjson.dumps(spec))
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.e2e_load",
                    str(workdir / f"plan-{rate}-{n}.json"),
                    str(workdir / f"result-{rate}-{n}.json"),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit("a sender did not start")
    with e2e_stack.connection(database_url) as conn:
        before = e2e_stack.last_id(conn)
        start = time.time() + 1.0
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"{start}\n")
            process.stdin.close()
        sampler = PssSampler({"web": stack.pid("web"), "worker": stack.pid("worker")})
        sampler.start()
        meter = CpuMeter(stack, redis_pid)
        warm = min(WARM_SECONDS, seconds / 3)
        metered = False
        while time.time() < start + seconds:
            now = time.time()
            if not metered and now >= start + warm:
                meter.begin()
                metered = True
            time.sleep(min(1.0, max(0.0, start + seconds - now)))
            step.backlog_samples.append((time.time() - start, e2e_stack.open_events(conn, before)))
        used = meter.end()
        step.backlog_end = e2e_stack.open_events(conn, before)
        step.connections = connections(stack, ports)
        step.pss = sampler.stop()
        window = used.pop("wall")
        step.cpu = {part: value / window for part, value in used.items()}
        for process in processes:
            process.wait()
        drain_start = time.time()
        while (
            e2e_stack.open_events(conn, before)
            and time.time() - drain_start < DRAIN_TIMEOUT_SECONDS
        ):
            time.sleep(0.2)
        step.drain_seconds = time.time() - drain_start
        rows = e2e_stack.step_rows(conn, before)
    results: dict[str, Any] = {"ids": [], "scheduled": [], "sent": [], "answered": [], "status": []}
    cpu = wall = 0.0
    for n in range(senders):
        part = orjson.loads((workdir / f"result-{rate}-{n}.json").read_bytes())
        for key in results:
            results[key] += part[key]
        cpu += part["cpu_seconds"]
        wall = max(wall, part["wall_seconds"])
    step.generator_cores = cpu / max(wall, 1e-9)
    for status in results["status"]:
        step.statuses[status] = step.statuses.get(status, 0) + 1
    step.ok = sum(n for status, n in step.statuses.items() if 200 <= status < 300)
    timed = zip(results["answered"], results["scheduled"], results["status"], strict=True)
    answered = [a - s for a, s, status in timed if status]
    step.answer_p50, step.answer_p99 = percentile(answered, 0.5), percentile(answered, 0.99)
    lateness = [s - p for s, p in zip(results["sent"], results["scheduled"], strict=True) if s]
    step.late_p99 = percentile(lateness, 0.99)
    sent_at = dict(zip(results["ids"], results["sent"], strict=True))
    step.stored = len(rows)
    final = [
        (svix, received, processed)
        for svix, status, received, processed in rows
        if processed is not None and status in e2e_stack.FINAL
    ]
    step.unfinished = len(rows) - len(final)
    for _, status, _, _ in rows:
        step.outcomes[status] = step.outcomes.get(status, 0) + 1
    step.fresh = summarize([processed - received for _, received, processed in final])
    step.visible = summarize(
        [processed - sent_at[svix] for svix, _, processed in final if svix in sent_at]
    )
    return step
