"""bench-e2e's open-loop generator: one sender process fires its share of a step's deliveries at
their scheduled times, whatever the answers' latency, and records each one's times and status.

The parent plans a step (`plan`: which event of which user, in order), gives each sender every
n-th delivery (a JSON file), and starts them together. A sender builds and signs its deliveries
first (whole HTTP requests as bytes, signed with the test secret as Clerk would sign them), says
`ready`, reads the common start time from stdin, then sends: at each scheduled time it takes an
idle keep-alive connection or opens a new one (never waiting for an answer to send the next).
Its results (svix id, scheduled, sent and answered time on the wall clock, HTTP status; 0 for no
answer) and its own CPU time while sending go to a JSON file.

    python -m benchmarks.e2e_load PLAN.json RESULT.json
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from webhooks.samples import clerk_id, sample_event
from webhooks.send import new_svix_id, signed_headers

# A realistic mix: sign-ups, profile changes, sign-ins and sign-outs. Every event but a
# user.created names a user created at least a second earlier (or in an earlier step).
MIX = (
    ("user.created", 0.35),
    ("user.updated", 0.15),
    ("session.created", 0.35),
    ("session.ended", 0.10),
    ("session.removed", 0.05),
)
MAX_CONNECTIONS = 512  # per sender; beyond it a delivery waits for a connection (and is late)
ANSWER_TIMEOUT_SECONDS = 30.0
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def plan(rate: int, seconds: float, known: list[str], rng: random.Random) -> list[list[Any]]:
    """[offset seconds, event type, user id] for every delivery of a step, in time order.
    `known` (users created in earlier steps) grows with this step's sign-ups."""
    types = [name for name, _ in MIX]
    weights = [weight for _, weight in MIX]
    count = int(rate * seconds)
    created: list[tuple[float, str]] = []  # this step's sign-ups, by offset
    ready = 0  # how many of `created` are at least a second old
    deliveries: list[list[Any]] = []
    for index in range(count):
        offset = index / rate
        while ready < len(created) and created[ready][0] <= offset - 1.0:
            ready += 1
        event_type = rng.choices(types, weights)[0]
        pool_size = len(known) + ready
        if event_type == "user.created" or pool_size == 0:
            user_id = clerk_id("user")
            created.append((offset, user_id))
            event_type = "user.created"
        else:
            pick = rng.randrange(pool_size)
            user_id = known[pick] if pick < len(known) else created[pick - len(known)][1]
        deliveries.append([offset, event_type, user_id])
    known.extend(user_id for _, user_id in created)
    return deliveries


def build(deliveries: list[list[Any]], secret: str, host: str) -> tuple[list[str], list[bytes]]:
    """Every delivery as a complete HTTP/1.1 request, signed now (the tolerance is 5 minutes);
    Clerk's `updated_at` follows the schedule, so a user's later event is newer."""
    base = dt.datetime.now(dt.UTC)
    ids: list[str] = []
    requests: list[bytes] = []
    for offset, event_type, user_id in deliveries:
        moment = base + dt.timedelta(seconds=offset)
        body = orjson.dumps(sample_event(event_type, user_id=user_id, now=moment))
        svix_id = new_svix_id()
        headers = signed_headers(secret, body, svix_id=svix_id, at=base)
        head = (
            f"POST /webhooks/clerk HTTP/1.1\r\nhost: {host}\r\n"
            f"svix-id: {svix_id}\r\nsvix-timestamp: {headers['svix-timestamp']}\r\n"
            f"svix-signature: {headers['svix-signature']}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        ids.append(svix_id)
        requests.append(head.encode() + body)
    return ids, requests


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self, sender: _Sender) -> None:
        self.sender = sender
        self.buffer = bytearray()
        self.index = -1
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, index: int) -> None:
        assert self.transport is not None
        self.index = index
        self.sender.sent[index] = time.time()
        self.transport.write(self.sender.requests[index])

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        match = _LENGTH.search(self.buffer, 0, end)
        total = end + 4 + (int(match.group(1)) if match else 0)
        if len(self.buffer) < total:
            return
        status = int(self.buffer[9:12])
        del self.buffer[:total]
        index, self.index = self.index, -1
        self.sender.answered_one(self, index, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sender.lost(self)


class _Sender:
    def __init__(self, host: str, port: int, scheduled: list[float], requests: list[bytes]):
        self.host, self.port = host, port
        self.scheduled = scheduled
        self.requests = requests
        count = len(requests)
        self.sent = [0.0] * count
        self.answered = [0.0] * count
        self.status = [0] * count
        self.idle: list[_Connection] = []
        self.open = 0  # connected or connecting
        self.connecting = 0
        self.waiting: deque[int] = deque()  # due, but no connection free yet
        self.outstanding = 0
        self.finished_scheduling = False
        self.tasks: set[asyncio.Future[None]] = set()
        self.done = asyncio.Event()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self), self.host, self.port
            )
        except OSError:
            self.open -= 1
            return
        finally:
            self.connecting -= 1
        self.idle.append(connection)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting and self.idle:
            self.idle.pop().send(self.waiting.popleft())
        missing = len(self.waiting) - self.connecting
        while missing > 0 and self.open < MAX_CONNECTIONS:
            self._open_one()
            missing -= 1

    def _open_one(self) -> None:
        self.open += 1
        self.connecting += 1
        task = asyncio.ensure_future(self._connect())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def answered_one(self, connection: _Connection, index: int, status: int) -> None:
        self.answered[index] = time.time()
        self.status[index] = status
        self.outstanding -= 1
        self.idle.append(connection)
        self._dispatch()
        self._check_done()

    def _check_done(self) -> None:
        if self.outstanding == 0 and self.finished_scheduling:
            self.done.set()

    def lost(self, connection: _Connection) -> None:
        self.open -= 1
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.index >= 0:  # no answer: status stays 0
            self.outstanding -= 1
        self._dispatch()
        self._check_done()

    async def run(self, start: float) -> None:
        for _ in range(32):
            self._open_one()
        index, count = 0, len(self.requests)
        while index < count:
            now = time.time()
            while index < count and start + self.scheduled[index] <= now:
                self.waiting.append(index)
                self.outstanding += 1
                index += 1
            self._dispatch()
            if index < count:
                # At least 1 ms: at high rates one wake-up sends several (lateness is recorded).
                await asyncio.sleep(max(0.001, start + self.scheduled[index] - time.time()))
        self.finished_scheduling = True
        if self.outstanding:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), ANSWER_TIMEOUT_SECONDS)


def main() -> None:
    plan_path, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = orjson.loads(plan_path.read_bytes())
    deliveries = spec["deliveries"]
    ids, requests = build(deliveries, spec["secret"], f"{spec['host']}:{spec['port']}")
    scheduled = [float(offset) for offset, _, _ in deliveries]
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    sender = _Sender(spec["host"], int(spec["port"]), scheduled, requests)
    cpu_before = time.process_time()
    asyncio.run(sender.run(start))
    cpu = time.process_time() - cpu_before
    result_path.write_bytes(
        orjson.dumps({
            "ids": ids, "scheduled": [start + s for s in scheduled], "sent": sender.sent,
            "answered": sender.answered, "status": sender.status, "cpu_seconds": cpu,
            "wall_seconds": time.time() - start,
        })
    )  # fmt: skip


if __name__ == "__main__":
    main()
