"""The one table at the top of BENCHMARKS.md: each benchmark's latest figures against their
baselines, rewritten by `make bench` (each bench also appends its detailed run below it).

A bench calls `record(...)`; its figures are kept in `.data/bench-results/<bench>.json` until the
table is written, so the table always shows the latest run of every benchmark on this machine.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / ".data" / "bench-results"
BENCHMARKS_FILE = ROOT / "BENCHMARKS.md"
START = "<!-- summary:start (rewritten by make bench) -->"
END = "<!-- summary:end -->"


@dataclass(frozen=True)
class Comparison:
    """One line of the table: a figure of ours against a baseline measured in the same run."""

    figure: str
    value: str
    baseline: str
    baseline_value: str
    ratio: float
    goal: str
    met: bool | None  # None: a figure for context, with no goal


def machine() -> str:
    load = os.getloadavg()[0]
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{os.cpu_count()} cores, {python}, load {load:.1f}"


def record(bench: str, comparisons: list[Comparison]) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    document = {
        "bench": bench,
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "comparisons": [asdict(comparison) for comparison in comparisons],
    }
    (RESULTS_DIR / f"{bench}.json").write_text(json.dumps(document, indent=2) + "\n")


def table() -> str:
    lines = [
        START,
        "## Where the service stands",
        "",
        "| benchmark | figure | value | baseline (same run) | baseline value | ratio | goal | "
        "measured | machine |",
        "|---|---|---:|---|---:|---:|---|---|---|",
    ]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        document = json.loads(path.read_text())
        for row in document["comparisons"]:
            met = {True: " (met)", False: " (**not met**)", None: ""}[row["met"]]
            lines.append(
                f"| {document['bench']} | {row['figure']} | {row['value']} | {row['baseline']} "
                f"| {row['baseline_value']} | {row['ratio']:.2f}x | {row['goal']}{met} "
                f"| {document['measured_at']} | {document['machine']} |"
            )
    lines += ["", END]
    return "\n".join(lines)


def rewrite(path: Path = BENCHMARKS_FILE) -> None:
    """Replace the summary block (or put one after the title) and keep every detailed run."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = table()
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        title, _, body = text.partition("\n")
        text = f"{title}\n\n{block}\n{body}"
    path.write_text(text)


if __name__ == "__main__":
    rewrite()
    print(table())
