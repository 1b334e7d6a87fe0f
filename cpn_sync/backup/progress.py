"""Bytes written or loaded so far, on one line of a terminal (stderr), for `cpn-sync backup`
and `restore`: a large dump takes minutes, and silence looks like a hang. Nothing is printed
when stderr is not a terminal (a log collector wants no carriage returns)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

MIN_INTERVAL = 0.2


def human_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


class ByteProgress:
    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self._shown_at = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if not self.enabled or (not force and now - self._shown_at < MIN_INTERVAL):
            return
        self._shown_at = now
        of = f" of {human_bytes(self.total)}" if self.total else ""
        self.stream.write(f"\r{self.label}: {human_bytes(done)}{of}\033[K")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.update(self.done, force=True)
            self.stream.write("\n")
            self.stream.flush()

    def counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass `chunks` through, counting their bytes."""
        done = self.done
        for chunk in chunks:
            done += len(chunk)
            self.update(done)
            yield chunk
        self.done = done
