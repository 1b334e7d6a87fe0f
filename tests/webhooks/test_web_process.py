"""The real `web` process: uvicorn with two workers, as the Procfile starts it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from tests.webhooks.conftest import (
    ENDPOINT,
    Delivery,
    WebServer,
    deliver,
    enqueued_ids,
    new_event,
    stored,
    task_messages,
    web_server_env,
)

pytestmark = pytest.mark.slow


def post_on_new_connection(
    server: WebServer, delivery: Delivery, timeout: float = 20
) -> httpx.Response:
    """A connection per request, so that the kernel spreads them over both workers."""
    with httpx.Client(base_url=server.url, timeout=timeout) as client:
        return client.post(ENDPOINT, content=delivery.body, headers=delivery.headers)


def scrape(server: WebServer) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def accepted_by_process(metrics_dir: Path) -> dict[str, float]:
    """Accepted events as each worker process counted them, from its own metrics file."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        metrics = MultiProcessCollector.merge([str(path)], accumulate=False)  # type: ignore[no-untyped-call]
        for metric in metrics:
            for item in metric.samples:
                if item.name == "cpn_webhook_events_accepted_total":
                    counts[path.stem.removeprefix("counter_")] = item.value
    return counts


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


def test_metrics_add_up_across_worker_processes(
    web_server: WebServer, clean_db: Engine, broker: redis.Redis
) -> None:
    before = scrape(web_server)["cpn_webhook_events_accepted_total"]
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        # Until both workers have taken some (bounded): the kernel decides who accepts.
        while sent < 400:
            answers = list(
                pool.map(
                    lambda d: post_on_new_connection(web_server, d),
                    [deliver(new_event()) for _ in range(40)],
                )
            )
            assert {answer.json()["status"] for answer in answers} == {"accepted"}
            sent += len(answers)
            per_process = accepted_by_process(web_server.metrics_dir)
            if sum(1 for count in per_process.values() if count > 0) >= 2:
                break
    assert sum(1 for count in per_process.values() if count > 0) >= 2
    assert sum(per_process.values()) == before + sent
    # Whichever worker answers the scrape, it reports the sum over both.
    for _ in range(6):
        assert scrape(web_server)["cpn_webhook_events_accepted_total"] == before + sent
    assert len(stored(clean_db)) == sent


def test_twenty_concurrent_copies_across_workers_make_one_row_and_one_task(
    web_server: WebServer, clean_db: Engine, broker: redis.Redis
) -> None:
    enqueued_before = scrape(web_server)["cpn_webhook_enqueued_total"]
    delivery = deliver(new_event())
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: post_on_new_connection(web_server, delivery), range(20)))
    assert (
        sorted(answer.json()["status"] for answer in answers) == ["accepted"] + ["duplicate"] * 19
    )
    [row] = stored(clean_db)
    # Every answer is in, so only one id was ever handed to a publisher; wait for it to go out.
    wait_until(lambda: scrape(web_server)["cpn_webhook_enqueued_total"] == enqueued_before + 1)
    assert task_messages(broker) == [{"task": "webhooks.process_events", "args": [[row.id]]}]


def test_declared_oversize_body_is_refused_before_it_is_sent(web_server: WebServer) -> None:
    """The 413 comes back while the client has sent only the headers."""
    delivery = deliver(new_event())
    head = (
        f"POST {ENDPOINT} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {1024 * 1024 + 1}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in delivery.headers.items())
        + "\r\n"
    )
    with socket.create_connection(("127.0.0.1", web_server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        raw = b""
        while b'"}' not in raw:  # until the JSON body is in, or the server hangs up
            received = sock.recv(4096)
            if not received:
                break
            raw += received
    answer = raw.decode()
    assert answer.startswith("HTTP/1.1 413")
    assert '"error":"too_large"' in answer


def test_chunked_oversize_body_is_cut_off(web_server: WebServer) -> None:
    delivery = deliver(new_event())

    def chunks() -> Iterator[bytes]:
        for _ in range(40):  # 2.5 MiB offered; the server stops reading after 1 MiB
            yield b"x" * (64 * 1024)

    with httpx.Client(base_url=web_server.url, timeout=20) as client:
        response = client.post(ENDPOINT, content=chunks(), headers=delivery.headers)
    assert response.status_code == 413


def test_sigterm_under_load_loses_nothing_that_was_stored_or_answered(
    database_url: str, broker_url: str, tmp_path: Path, clean_db: Engine, broker: redis.Redis
) -> None:
    """A deploy stops the process mid-traffic: every 200 has its row, and every stored row has
    its task message (the shutdown drains the inbox writers, then the publisher)."""
    env = web_server_env(database_url, broker_url, tmp_path / "metrics")
    server = WebServer(env, tmp_path / "metrics", tmp_path / "web.log")
    deliveries = [deliver(new_event()) for _ in range(300)]
    try:
        server.wait_ready()
        with ThreadPoolExecutor(max_workers=16) as pool:
            # Connections still in the listen queue at the stop are never answered: short timeout.
            pending = [pool.submit(post_on_new_connection, server, d, 5) for d in deliveries]
            wait_until(lambda: sum(future.done() for future in pending) >= 40)
            exit_code = server.stop()
            outcomes = [future.exception() or future.result() for future in pending]
    finally:
        server.stop()
    assert exit_code == 0
    accepted = {
        delivery.svix_id
        for delivery, outcome in zip(deliveries, outcomes, strict=True)
        if isinstance(outcome, httpx.Response) and outcome.status_code == 200
    }
    assert len(accepted) >= 40
    rows = stored(clean_db)
    assert accepted <= {row.svix_id for row in rows}
    published = sorted(enqueued_ids(broker))
    assert published == sorted(row.id for row in rows)
