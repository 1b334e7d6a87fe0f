"""bench-e2e's printed table and BENCHMARKS.md section."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from typing import Any

from benchmarks import summary
from benchmarks.bench_ingest import Result
from benchmarks.e2e_step import Step

MIB = 2**20
PARTS = ("web", "worker", "beat", "postgres", "redis")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if seconds == seconds else "-"


def step_line(step: Step) -> str:
    statuses = ", ".join(f"{s or 'none'}: {n}" for s, n in sorted(step.statuses.items()))
    return (
        f"answered {step.answered_per_second:,.0f}/s (p99 {ms(step.answer_p99)} ms; {statuses}); "
        f"freshness p50/p99/max {ms(step.fresh['p50'])}/{ms(step.fresh['p99'])}/"
        f"{ms(step.fresh['max'])} ms, send->row {ms(step.visible['p50'])}/"
        f"{ms(step.visible['p99'])}/{ms(step.visible['max'])} ms; backlog at end "
        f"{step.backlog_end} (slope {step.backlog_slope:+,.0f}/s), drained in "
        f"{step.drain_seconds:.1f} s; cores " + ", ".join(f"{p} {step.cpu[p]:.2f}" for p in PARTS)
        + f", generator {step.generator_cores:.2f}, machine {step.cpu['machine']:.2f}; "
        f"rows {step.outcomes}; {'sustained' if step.sustained else 'NOT sustained'}"
    )  # fmt: skip


def connection_summary(step: Step) -> str:
    """PostgreSQL / Redis connections per process, e.g. `web 3 processes: 0+5+5 / 0+1+1`."""
    parts: dict[str, list[dict[str, int]]] = {}
    for name, counts in step.connections.items():
        parts.setdefault(name.split()[0], []).append(counts)
    return "; ".join(
        f"{part} ({len(rows)} processes): PostgreSQL "
        + "+".join(str(row["postgres"]) for row in rows)
        + ", Redis " + "+".join(str(row["redis"]) for row in rows)
        for part, rows in parts.items()
    )  # fmt: skip


def report(
    steps: list[Step], floors: list[Result], memory: dict[str, dict[str, float]],
    args: argparse.Namespace,
) -> str:  # fmt: skip
    sustained = [step for step in steps if step.sustained]
    best = max(sustained, key=lambda s: s.rate, default=None)
    top = steps[-1] if steps else None
    by_name = {result.server.name: result for result in floors}
    now = dt.datetime.now(dt.UTC)
    lines = [
        f"## bench-e2e {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}; `cpn-sync web`, `worker` "
        f"and `beat` as the Procfile starts them, default settings (2 uvicorn workers, worker "
        f"concurrency 2, event batch 50), PostgreSQL on the same cores, embedded Redis; "
        f"{args.senders} open-loop sender processes, {args.duration:.0f} s per rate, mix "
        f"35 % user.created, 15 % user.updated, 35 % session.created, 10 % session.ended, "
        f"5 % session.removed. {args.note}".rstrip(),
        "",
        "| offered/s | answered 2xx/s | answer p99 ms | freshness p50 / p99 / max ms "
        "(processed - received) | send -> row p50 / p99 / max ms | backlog at end | drain s "
        "| web / worker / PostgreSQL / Redis cores | machine cores busy | generator cores, "
        "late p99 ms | PSS web / worker MiB | sustained |",
        "|---:|---:|---:|---|---|---:|---:|---|---:|---|---|---|",
    ]
    for step in steps:
        lines.append(
            f"| {step.rate:,} | {step.answered_per_second:,.0f} | {ms(step.answer_p99)} | "
            f"{ms(step.fresh['p50'])} / {ms(step.fresh['p99'])} / {ms(step.fresh['max'])} | "
            f"{ms(step.visible['p50'])} / {ms(step.visible['p99'])} / {ms(step.visible['max'])} "
            f"| {step.backlog_end:,} | {step.drain_seconds:.1f} | {step.cpu['web']:.2f} / "
            f"{step.cpu['worker']:.2f} / {step.cpu['postgres']:.2f} / {step.cpu['redis']:.2f} "
            f"| {step.cpu['machine']:.2f} | {step.generator_cores:.2f}, {ms(step.late_p99)} "
            f"| {step.pss.get('web', 0) / MIB:.0f} / "
            f"{step.pss.get('worker', 0) / MIB:.0f} | {'yes' if step.sustained else 'no'} |"
        )
    lines += ["", "Stored events by final status (every 2xx answer is a row): " + "; ".join(
        f"{step.rate:,}/s: " + ", ".join(f"{k} {v:,}" for k, v in sorted(step.outcomes.items()))
        + f" of {step.ok:,} accepted" for step in steps
    )]  # fmt: skip
    lines += ["", "Baselines, same run, closed loop (wrk, 2 threads, 32 connections, "
              f"{args.baseline_duration} s, best of {args.baseline_rounds}):", ""]  # fmt: skip
    for result in floors:
        lines.append(
            f"- {result.server.label}: {result.per_second:,.0f}/s, p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, {result.cpu_us_per_request:,.0f} µs server CPU/event, "
            f"non-2xx {result.non_2xx}"
        )
    lines.append("")
    if best is not None:
        lines.append(
            f"- **sustained end-to-end rate: {best.rate:,}/s** (freshness p99 "
            f"{ms(best.fresh['p99'])} ms, send -> row p99 {ms(best.visible['p99'])} ms)"
        )
        for name, goal in (("insert-one", 1.0), ("inline-upsert", 5.0)):
            if name in by_name:
                base = by_name[name]
                ratio = best.rate / base.per_second
                lines.append(f"- sustained / {base.server.label} ({base.per_second:,.0f}/s): "
                             f"**{ratio:.2f}x** (goal >= {goal:.1f}x: "
                             f"{'met' if ratio >= goal else 'not met'})")  # fmt: skip
    else:
        lines.append("- **no rate was sustained**")
    at_1000 = next((s for s in steps if s.rate == 1000), None)
    if at_1000 is not None:
        lines.append(f"- freshness p99 at 1,000/s: {ms(at_1000.fresh['p99'])} ms, send -> row "
                     f"{ms(at_1000.visible['p99'])} ms (goal <= 100 ms)")  # fmt: skip
    if top is not None:
        web, worker = top.pss.get("web", 0) / MIB, top.pss.get("worker", 0) / MIB
        lines.append(
            f"- PSS at the top rate ({top.rate:,}/s): web {web:.0f} MiB, worker {worker:.0f} "
            f"MiB (goal < 250 MB)"
        )
    lines += ["", *cpu_costs(steps), "", *redis_lines(memory)]
    if best is not None:
        lines += ["", f"Connections at {best.rate:,}/s: {connection_summary(best)}."]
    return "\n".join(lines) + "\n"


def cpu_costs(steps: list[Step]) -> list[str]:
    """CPU per 1,000 events/s of each part, from every sustained step (cores / thousands/s)."""
    lines = ["CPU cost, cores per 1,000 events/s offered (steady window of each step); the "
             "worker's also per 1,000 applied/s (offered less the backlog's growth) where it "
             "fell behind:", ""]  # fmt: skip
    for step in steps:
        k = step.rate / 1000
        costs = ", ".join(f"{part} {step.cpu[part] / k:.2f}" for part in PARTS)
        applied = step.rate - max(step.backlog_slope, 0.0)
        behind = "" if step.sustained else (
            f"; worker per 1,000 applied/s {step.cpu['worker'] / max(applied / 1000, 1e-9):.2f} "
            f"(about {applied:,.0f}/s applied; drained alone at "
            f"{step.backlog_end / max(step.drain_seconds, 1e-9):,.0f}/s)"
        )  # fmt: skip
        lines.append(
            f"- at {step.rate:,}/s: {costs}; generator {step.generator_cores / k:.2f}{behind}"
        )
    ran = [step for step in steps if step.sustained]
    if len(ran) >= 2:  # the marginal cost: what each further 1,000/s adds (fixed costs cancel)
        low, high = ran[0], ran[-1]
        k = (high.rate - low.rate) / 1000
        costs = ", ".join(
            f"{part} {(high.cpu[part] - low.cpu[part]) / k:.2f}" for part in (*PARTS, "machine")
        )
        lines.append(f"- marginal, {low.rate:,}/s to {high.rate:,}/s: {costs}")
    return lines


def redis_lines(memory: dict[str, Any]) -> list[str]:
    full, single = memory["full"], memory["single"]
    return [
        "Redis memory per million queued event ids (the web's publisher, no consumer): "
        f"{full['bytes_per_id'] * 1e6 / MIB:,.0f} MiB in messages of 50 ids "
        f"({int(full['ids']):,} ids, {int(full['messages']):,} messages), "
        f"{single['bytes_per_id'] * 1e6 / MIB:,.0f} MiB one id a message "
        f"(measured on {int(single['ids']):,} ids and scaled).",
    ]


def record_summary(steps: list[Step], floors: list[Result]) -> None:
    """The figures issue #19 sets goals for, for `make bench`'s table (benchmarks.summary)."""
    best = max((s for s in steps if s.sustained), key=lambda s: s.rate, default=None)
    if best is None or not steps:
        return
    rows = []
    for result, goal in zip(floors, (1.0, 5.0), strict=False):
        ratio = best.rate / result.per_second
        rows.append(
            summary.Comparison(
                "sustained end-to-end events/s (open loop, freshness p99 < 1 s, no backlog)",
                f"{best.rate}/s", result.server.label, f"{result.per_second:.0f}/s", ratio,
                f">= {goal:.1f}x", ratio >= goal,
            )
        )  # fmt: skip
    at_1000 = next((s for s in steps if s.rate == 1000), None)
    if at_1000 is not None:
        p99 = at_1000.fresh["p99"] * 1000
        rows.append(
            summary.Comparison(
                "freshness p99 at 1,000 events/s (processed_at - received_at)", f"{p99:.0f} ms",
                "the 1 s bound of a sustained rate", "1000 ms", p99 / 1000, "<= 100 ms",
                p99 <= 100,
            )
        )  # fmt: skip
    top = steps[-1]
    worker = top.pss.get("worker", 0)
    rows.append(
        summary.Comparison(
            f"worker PSS at the top rate ({top.rate}/s)", f"{worker / MIB:.0f} MiB",
            "web PSS, same rate", f"{top.pss.get('web', 0) / MIB:.0f} MiB",
            worker / max(top.pss.get("web", 1), 1), "< 250 MB", worker < 250e6,
        )
    )  # fmt: skip
    summary.record("bench-e2e", rows)
