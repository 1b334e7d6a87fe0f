"""The servers a test run uses: TEST_DATABASE_URL / TEST_REDIS_URL when set, else embedded ones.

Every run gets databases of its own (a PostgreSQL database named after the run, a Redis server or
database of its own), so two runs never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from cpn_sync import local
from cpn_sync.settings import normalize_database_url
from db.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CPN_SHARED_DIR", ROOT.parent / "shared"))


@dataclass
class TestServers:
    admin_url: str
    redis_url: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    databases: list[str] = field(default_factory=list)
    redis_server: local.RedisServer | None = None
    pg_handle: Any = None

    __test__ = False  # not a test class, despite the name

    def new_database(self, *, migrate: bool = True) -> str:
        """A fresh, empty database on the test server, dropped when the run ends."""
        name = f"cpn_test_{self.run_id}_{len(self.databases)}"
        url = local.ensure_database(self.admin_url, name)
        self.databases.append(name)
        if migrate:
            upgrade(url)
        return url

    def close(self) -> None:
        for name in self.databases:
            with contextlib.suppress(Exception):
                local.drop_database(self.admin_url, name)
        if self.redis_server is not None:
            self.redis_server.stop()


def start() -> TestServers:
    if os.environ.get("TEST_DATABASE_URL"):
        admin_url = normalize_database_url(os.environ["TEST_DATABASE_URL"])
        pg_handle = None
    else:
        pg_handle, admin_url = local.start_postgres(ROOT / ".data" / "test-postgres")

    redis_server = None
    if os.environ.get("TEST_REDIS_URL"):
        # A database index of its own on the given server, emptied first.
        base = os.environ["TEST_REDIS_URL"].rstrip("/").rsplit("/", 1)
        server_url = base[0] if base[-1].isdigit() else os.environ["TEST_REDIS_URL"].rstrip("/")
        redis_url = f"{server_url}/{random.randint(1, 15)}"
        redis.Redis.from_url(redis_url).flushdb()
    else:
        redis_dir = Path(tempfile.mkdtemp(prefix="cpn-test-redis-"))
        redis_server = local.RedisServer(redis_dir, appendonly=False).start()
        redis_url = redis_server.url
    return TestServers(admin_url, redis_url, redis_server=redis_server, pg_handle=pg_handle)


def purge_task_queues(broker_url: str) -> None:
    """A shared broker (RabbitMQ) outlives test runs: empty the task queues before this one."""
    from kombu import Connection

    from cpn_sync.task_contract import QUEUES

    with Connection(broker_url, connect_timeout=5) as connection:
        channel: Any = connection.default_channel  # kombu's channels differ by transport
        for queue in QUEUES:
            with contextlib.suppress(Exception):
                channel.queue_purge(queue)


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, remove) environment variables for the block."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
