"""Liveness of the worker and beat processes, for the orchestrator's healthchecks.

A worker is alive when its own node answers a control `ping` through the broker (the consumer
loop, not just the process, is working). Beat is alive when its scheduler has ticked recently:
`HeartbeatScheduler` touches a file on every tick, and beat ticks at least every
`MAX_TICK_SECONDS` (the longest sleep it is allowed).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler

MAX_TICK_SECONDS = 60
BEAT_STALE_AFTER_SECONDS = 5 * MAX_TICK_SECONDS
HEARTBEAT_FILE = "beat-heartbeat"


class HeartbeatScheduler(PersistentScheduler):
    """Celery's persistent scheduler that also says, by a file's mtime, that it still ticks."""

    def __init__(self, *args: Any, heartbeat: Path | None = None, **kwargs: Any) -> None:
        self.heartbeat = heartbeat or Path(kwargs["schedule_filename"]).with_name(HEARTBEAT_FILE)
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self.heartbeat.touch()
        interval: float = super().tick(*args, **kwargs)
        return interval


def beat_is_alive(data_dir: Path, now: float | None = None) -> bool:
    try:
        ticked_at = (data_dir / HEARTBEAT_FILE).stat().st_mtime
    except FileNotFoundError:
        return False
    return (now if now is not None else time.time()) - ticked_at < BEAT_STALE_AFTER_SECONDS


def worker_answers(app: Celery, node: str | None = None, timeout: float = 10.0) -> bool:
    """True when the worker node (default: this host's `celery@hostname`) answers a ping."""
    node = node or f"celery@{socket.gethostname()}"
    replies = app.control.ping(destination=[node], timeout=timeout) or []
    return any(node in reply for reply in replies)
