"""The per-process deadline keeper of webhook requests (`webhooks.deadlines`)."""

from __future__ import annotations

import asyncio
import time

import pytest

from webhooks.deadlines import Deadlines

pytestmark = pytest.mark.anyio


async def test_a_block_that_overruns_raises_timeout_error_and_the_task_goes_on() -> None:
    deadlines = Deadlines(resolution=0.05)
    deadlines.start()
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError), deadlines.within(0.2):
            await asyncio.sleep(30)
        await asyncio.sleep(0)  # not cancelled any more
        with deadlines.within(5):
            await asyncio.sleep(0.1)  # in time: nothing happens
    finally:
        await deadlines.close()
    assert 0.2 <= time.monotonic() - started < 2


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(resolution=0.05)
    deadlines.start()

    async def waits() -> None:
        with deadlines.within(30):
            await asyncio.sleep(30)

    task = asyncio.create_task(waits())
    await asyncio.sleep(0.1)
    task.cancel()
    try:
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await deadlines.close()
