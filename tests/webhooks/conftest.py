"""Fixtures for the HTTP edge: signed deliveries, the app in-process with its lifespan running,
and a Redis database of these tests' own, so that the task messages on it are only theirs."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cpn_sync.local import free_port
from cpn_sync.settings import Settings
from db.models import WebhookEvent
from tests.conftest import TEST_WEBHOOK_SECRET
from webhooks.app import create_app
from webhooks.samples import sample_event
from webhooks.send import new_svix_id, signed_headers

WEBHOOK_QUEUE = "webhooks"
ENDPOINT = "/webhooks/clerk"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def broker_url(redis_url: str) -> str:
    """Database 11 of the run's Redis: no other test's worker consumes from it."""
    return f"{redis_url.rsplit('/', 1)[0]}/11"


@pytest.fixture
def broker(broker_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(broker_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(database_url: str, broker_url: str, clean_db: Engine) -> Settings:
    """The app's settings for one test; the inbox is emptied after it."""
    return Settings(
        database_url=database_url,
        redis_url=broker_url,
        celery_broker_url=None,
        clerk_webhook_secret=TEST_WEBHOOK_SECRET,
        log_format="json",
    )


def closed_port_url(scheme: str) -> str:
    """A URL of a server that is not there (nothing listens on the port)."""
    if scheme == "postgresql":
        return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/absent"
    return f"redis://127.0.0.1:{free_port()}/0"


@asynccontextmanager
async def running_app(
    settings: Settings, *, ready_max_age: float = 1.0
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process, lifespan included; leaving it flushes the publisher."""
    app = create_app(settings, gauge_max_age=0, ready_max_age=ready_max_age)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]

    @property
    def svix_id(self) -> str:
        return self.headers["svix-id"]


def deliver(
    event: dict[str, Any] | bytes,
    *,
    secret: str = TEST_WEBHOOK_SECRET,
    at: dt.datetime | None = None,
    svix_id: str | None = None,
) -> Delivery:
    """A delivery as Clerk sends it: the body and its Svix headers."""
    body = event if isinstance(event, bytes) else orjson.dumps(event)
    return Delivery(body, signed_headers(secret, body, svix_id=svix_id or new_svix_id(), at=at))


def svix_scheme_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over `id.timestamp.body`, as Svix documents it (no svix code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['svix-id']}.{headers['svix-timestamp']}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def new_event(event_type: str = "user.created", **options: Any) -> dict[str, Any]:
    return sample_event(event_type, **options)


async def post(client: httpx.AsyncClient, delivery: Delivery) -> httpx.Response:
    return await client.post(ENDPOINT, content=delivery.body, headers=delivery.headers)


def payload_of(row: WebhookEvent) -> Any:
    """A stored row's payload (not redacted)."""
    assert row.payload is not None
    return row.payload


def stored(engine: Engine, svix_id: str | None = None) -> list[WebhookEvent]:
    with Session(engine) as session:
        query = select(WebhookEvent).order_by(WebhookEvent.id)
        if svix_id is not None:
            query = query.where(WebhookEvent.svix_id == svix_id)
        return list(session.scalars(query))


def task_messages(broker: redis.Redis) -> list[dict[str, Any]]:
    """The Celery messages waiting in queue `webhooks`: task name and args of each."""
    found = []
    for raw in broker.lrange(WEBHOOK_QUEUE, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append({"task": message["headers"]["task"], "args": args})
    return found


def enqueued_ids(broker: redis.Redis) -> list[int]:
    """The event ids of every `webhooks.process_events` message waiting, in order."""
    ids: list[int] = []
    for message in task_messages(broker):
        assert message["task"] == "webhooks.process_events", message
        [batch] = message["args"]
        ids.extend(batch)
    return ids


class WebServer:
    """A real `cpn-sync web` (uvicorn, 2 workers), started as the Procfile starts it."""

    def __init__(self, env: dict[str, str], metrics_dir: Path, log_path: Path) -> None:
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_dir = metrics_dir
        self.log_path = log_path
        cli = str(Path(sys.executable).parent / "cpn-sync")
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [cli, "web"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cpn-sync web exited:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"cpn-sync web not ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def web_server_env(database_url: str, broker_url: str, metrics_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=broker_url,
        CLERK_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",
        LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PYTHONUNBUFFERED="1",
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


@contextlib.contextmanager
def serving(
    database_url: str, broker_url: str, workdir: Path, **settings: str
) -> Iterator[WebServer]:
    """A real `cpn-sync web` with these settings added to the environment, until left."""
    env = web_server_env(database_url, broker_url, workdir / "metrics")
    env.update(settings)
    server = WebServer(env, workdir / "metrics", workdir / "web.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def web_server(
    database_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebServer]:
    with serving(database_url, broker_url, tmp_path_factory.mktemp("web")) as server:
        yield server
