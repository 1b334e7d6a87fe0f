"""Deadlines for the webhook requests of one process, kept by one task instead of a timer each.

`asyncio.timeout` schedules (and cancels) a timer handle per use, which costs the ingest path
about as much as verifying the signature; here a request only writes its deadline into a dict,
and one task looks a few times a second for requests that overran and cancels them. A deadline
is thus kept to within `resolution` seconds, which is all a slow sender's cut-off needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType


class Deadlines:
    def __init__(self, resolution: float = 0.25) -> None:
        self._resolution = resolution
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="webhook-deadlines")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    def within(self, seconds: float) -> _Deadline:
        """`with deadlines.within(s):` raises TimeoutError when its block is still running
        after `s` seconds (give or take `resolution`)."""
        return _Deadline(self, seconds)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._resolution)
            now = time.monotonic()
            for task, due in list(self._due.items()):
                if due <= now:
                    del self._due[task]
                    self._expired.add(task)
                    task.cancel()


class _Deadline:
    __slots__ = ("_deadlines", "_seconds", "_task")

    def __init__(self, deadlines: Deadlines, seconds: float) -> None:
        self._deadlines = deadlines
        self._seconds = seconds
        self._task: asyncio.Task[object] | None = None

    def __enter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None, "a deadline is for code running in a task"
        self._task = task
        self._deadlines._due[task] = time.monotonic() + self._seconds

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task = self._task
        assert task is not None
        self._deadlines._due.pop(task, None)
        if task in self._deadlines._expired:
            self._deadlines._expired.discard(task)
            if task.uncancel() == 0 and kind is asyncio.CancelledError:
                raise TimeoutError from None
