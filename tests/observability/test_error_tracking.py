"""Errors reach an error tracker, and nothing personal goes with them: a real `cpn-sync worker`
with SENTRY_DSN pointing at a local HTTP endpoint (standing in for Sentry) runs a task made to
fail on an email address and an IP address; the event arrives, naming the task and the error,
and carries neither value."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from celery import Celery

from cpn_sync.error_scrubbing import scrub_event
from cpn_sync.local import free_port
from cpn_sync.settings import Settings
from cpn_sync.task_contract import PROCESS_EVENT
from tests.observability.conftest import worker_env
from tests.worker_process import WorkerProcess
from tests.workers.conftest import running

EMAIL = "alice.smith@example.com"
IP = "203.0.113.9"


class SentryStandIn(ThreadingHTTPServer):
    """Accepts what sentry-sdk posts (`/api/<project>/envelope/`) and keeps each body."""

    def __init__(self, port: int) -> None:
        self.bodies: list[bytes] = []
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: SentryStandIn

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.bodies.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def events_in(bodies: list[bytes]) -> list[dict[str, Any]]:
    """The `event` items of the envelopes received (a header line, then item header + payload)."""
    found = []
    for body in bodies:
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                found.append(json.loads(payload))
    return found


@pytest.fixture
def sentry() -> Iterator[SentryStandIn]:
    server = SentryStandIn(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_a_failed_task_reaches_the_tracker_without_personal_values(
    settings: Settings, broker: object, publisher: Celery, sentry: SentryStandIn
) -> None:
    dsn = f"http://publickey@127.0.0.1:{sentry.server_address[1]}/1"
    env = worker_env(settings, SENTRY_DSN=dsn)
    with running(WorkerProcess(concurrency=1, extra_env=env)):
        # An id that is an email address: PostgreSQL refuses it, quoting it in its message.
        publisher.send_task(PROCESS_EVENT, args=[EMAIL, IP], ignore_result=True)
        deadline = time.monotonic() + 30
        while not events_in(sentry.bodies) and time.monotonic() < deadline:
            time.sleep(0.2)

    (event,) = events_in(sentry.bodies)
    raw = b"".join(sentry.bodies).decode()
    (exception,) = event["exception"]["values"][-1:]
    assert exception["type"] == "ScrubbedDatabaseError"  # the task's own value-free error
    assert "SQLSTATE" in exception["value"]
    assert exception["mechanism"]["type"] == "celery"
    assert event["transaction"] == "webhooks.process_event"
    assert event["extra"]["celery-job"]["args"] == "[Filtered]"
    for personal in (EMAIL, "alice.smith", IP):
        assert personal not in raw


def test_the_scrubber_removes_what_integrations_attach() -> None:
    event = {
        "request": {"method": "POST", "url": "/webhooks/clerk", "data": {"email": EMAIL},
                    "headers": {"x-forwarded-for": IP}, "cookies": "s=1"},
        "user": {"ip_address": IP},
        "extra": {"celery-job": {"task_name": "t", "args": [EMAIL], "kwargs": {}}},
        "breadcrumbs": {"values": [{"message": f"sent to {EMAIL} from {IP} with whsec_abcdefgh"}]},
        "contexts": {"trace": {"first_name": "Alice", "last_name": "Smith"}},
    }  # fmt: skip

    scrubbed = json.dumps(scrub_event(event, {}))

    for value in (EMAIL, IP, "whsec_abcdefgh", "Alice", "Smith", "s=1"):
        assert value not in scrubbed
    assert '"task_name": "t"' in scrubbed
    assert '"url": "/webhooks/clerk"' in scrubbed
