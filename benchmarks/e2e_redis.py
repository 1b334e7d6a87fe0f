"""bench-e2e's Redis figure: the broker's memory per million queued event ids, measured by
publishing ids exactly as the web's publisher does (its own class, Celery's message format) into
a fresh embedded Redis that no worker consumes.

Two shapes: full messages (EVENT_BATCH_SIZE ids each, the default 50: what a backlog under load
is made of) and one id a message (the sweeper's and replay's shape, and a trickle at low rates),
the second measured on fewer ids and scaled.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import redis

from cpn_sync import local
from cpn_sync.settings import Settings
from webhooks.publisher import Publisher

QUEUE = "webhooks"


def queued_bytes(ids: int, ids_per_message: int) -> dict[str, float]:
    """Publish `ids` ids, `ids_per_message` a message; answer Redis's memory growth."""
    server = local.RedisServer(Path(tempfile.mkdtemp(prefix="cpn-e2e-redis-")), appendonly=False)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, event_batch_size=ids_per_message)
        # No linger and large hand-overs: the messages are the web's, only built faster.
        publisher = Publisher(settings, batch_size=10_000, linger=0.0, max_pending=10**9)
        publisher.start()
        before = int(client.info("memory")["used_memory"])
        chunk = 1000
        for start in range(1, ids + 1, chunk):
            publisher.submit(list(range(start, min(start + chunk, ids + 1))))
        messages = -(-ids // ids_per_message)
        deadline = time.monotonic() + 600
        while int(client.llen(QUEUE)) < messages and time.monotonic() < deadline:
            time.sleep(0.2)
        publisher.close()
        after = int(client.info("memory")["used_memory"])
        usage = int(client.memory_usage(QUEUE, samples=0) or 0)
        queued = int(client.llen(QUEUE))
        client.close()
    finally:
        server.stop()
    return {
        "ids": ids,
        "messages": queued,
        "used_memory_delta": after - before,
        "memory_usage_key": usage,
        "bytes_per_id": (after - before) / ids,
    }


def per_million(
    full_ids: int = 1_000_000, single_ids: int = 100_000
) -> dict[str, dict[str, float]]:
    return {
        "full": queued_bytes(full_ids, Settings().event_batch_size),
        "single": queued_bytes(single_ids, 1),
    }


if __name__ == "__main__":
    for shape, figures in per_million(100_000, 10_000).items():
        print(shape, figures, f"{figures['bytes_per_id'] * 1e6 / 2**20:.0f} MiB per million ids")
