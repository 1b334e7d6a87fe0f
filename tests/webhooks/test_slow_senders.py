"""Slow senders against the real `cpn-sync web` (uvicorn, one worker so that every connection
reaches the same process): raw sockets that send their headers and part of a body, then stall."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.webhooks.conftest import (
    ENDPOINT,
    Delivery,
    WebServer,
    deliver,
    new_event,
    serving,
    stored,
)

pytestmark = pytest.mark.slow

BODY_TIMEOUT = 1.0
MAX_PENDING = 3


@pytest.fixture(scope="module")
def slow_web(
    database_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebServer]:
    with serving(
        database_url,
        broker_url,
        tmp_path_factory.mktemp("slow-web"),
        WEB_CONCURRENCY="1",
        WEBHOOK_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        WEBHOOK_MAX_PENDING=str(MAX_PENDING),
    ) as server:
        yield server


def start_slowly(server: WebServer, delivery: Delivery, sent: int = 10) -> socket.socket:
    """Send the request line, the headers and the first `sent` bytes of the body; no more."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    head = [f"POST {ENDPOINT} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    head += [f"{name}: {value}" for name, value in delivery.headers.items()]
    head += ["Content-Type: application/json", f"Content-Length: {len(delivery.body)}"]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + delivery.body[:sent])
    return sock


def status_line(sock: socket.socket) -> str:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer.decode(errors="replace").split("\r\n", 1)[0]


def post(server: WebServer, delivery: Delivery) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        return client.post(ENDPOINT, content=delivery.body, headers=delivery.headers)


def test_a_body_that_does_not_arrive_in_time_is_408_and_nothing_is_stored(
    slow_web: WebServer, clean_db: Engine
) -> None:
    delivery = deliver(new_event())
    started = time.monotonic()
    with contextlib.closing(start_slowly(slow_web, delivery)) as sock:
        line = status_line(sock)
    waited = time.monotonic() - started
    assert line == "HTTP/1.1 408 Request Timeout"
    assert BODY_TIMEOUT * 0.9 <= waited < BODY_TIMEOUT + 5
    assert stored(clean_db, delivery.svix_id) == []


def test_beyond_max_pending_requests_it_is_503_with_retry_after_then_service_resumes(
    slow_web: WebServer, clean_db: Engine
) -> None:
    slow = [deliver(new_event()) for _ in range(MAX_PENDING)]
    sockets = [start_slowly(slow_web, delivery) for delivery in slow]
    try:
        time.sleep(0.3)  # the server has taken them all
        refused = deliver(new_event())
        answer = post(slow_web, refused)
        assert answer.status_code == 503
        assert answer.headers["retry-after"].isdigit()
        assert answer.json()["error"] == "overloaded"
        assert [status_line(sock) for sock in sockets] == ["HTTP/1.1 408 Request Timeout"] * 3
    finally:
        for sock in sockets:
            sock.close()
    assert stored(clean_db, refused.svix_id) == []
    again = post(slow_web, refused)  # Clerk's retry, once the slow senders are gone
    assert (again.status_code, again.json()["status"]) == (200, "accepted")
    assert {row.svix_id for row in stored(clean_db)} == {refused.svix_id}


def test_sigterm_stops_within_the_grace_while_a_slow_sender_holds_a_connection(
    database_url: str, broker_url: str, tmp_path: Path
) -> None:
    from webhooks.server import GRACEFUL_SHUTDOWN_SECONDS

    with serving(
        database_url, broker_url, tmp_path, WEB_CONCURRENCY="1", WEBHOOK_BODY_TIMEOUT_SECONDS="300"
    ) as server:
        sock = start_slowly(server, deliver(new_event()))
        time.sleep(0.3)
        started = time.monotonic()
        server.stop(timeout=GRACEFUL_SHUTDOWN_SECONDS + 20)
        stopped_after = time.monotonic() - started
        sock.close()
    assert stopped_after < GRACEFUL_SHUTDOWN_SECONDS + 10
