"""Messages waiting in the broker's queues, in the web's `/metrics` (the app in-process, with
its lifespan, and no worker consuming)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from celery import Celery
from kombu import Connection, Exchange, Producer, Queue

from cpn_sync.settings import Settings
from cpn_sync.task_contract import CPN_SCAN_DIRTY, MAINTENANCE_CANARY
from tests.observability.conftest import Scrape
from tests.webhooks.conftest import closed_port_url, deliver, new_event, post, running_app
from webhooks.app import create_app
from webhooks.observability import metrics
from webhooks.observability.broker_metrics import BrokerGauges

pytestmark = pytest.mark.anyio

QUEUE_MESSAGES = "cpn_queue_messages"
LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return Scrape.parse(response.text)


def queue_lengths(found: Scrape, *queues: str) -> dict[str, float | None]:
    return {queue: found.value(QUEUE_MESSAGES, queue=queue) for queue in queues}


async def test_messages_waiting_in_each_queue_are_counted_priority_lists_included(
    settings: Settings, broker: redis.Redis, publisher: Celery
) -> None:
    for _ in range(2):
        publisher.send_task(CPN_SCAN_DIRTY, ignore_result=True)
    publisher.send_task(CPN_SCAN_DIRTY, priority=9, ignore_result=True)
    publisher.send_task(MAINTENANCE_CANARY, ignore_result=True)
    # Redis keeps the priority-9 message in a list of its own, which `LLEN cpn` leaves out.
    assert broker.llen("cpn") == 2

    async with running_app(settings) as client:
        found = await scrape(client)

    assert queue_lengths(found, "webhooks", "cpn", "maintenance") == {
        "webhooks": 0,
        "cpn": 3,
        "maintenance": 1,
    }


async def test_a_scrape_within_the_cache_age_does_not_read_the_broker_again(
    settings: Settings, broker: redis.Redis, publisher: Celery
) -> None:
    app = create_app(settings, gauge_max_age=60)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            before = await scrape(client)
            publisher.send_task(CPN_SCAN_DIRTY, ignore_result=True)
            cached = await scrape(client)
    async with running_app(settings) as client:  # another app reads afresh
        fresh = await scrape(client)

    assert queue_lengths(before, "cpn") == queue_lengths(cached, "cpn") == {"cpn": 0}
    assert queue_lengths(fresh, "cpn") == {"cpn": 1}


async def test_a_scrape_answers_with_the_last_values_while_broker_and_redis_are_down(
    settings: Settings, broker: redis.Redis, publisher: Celery
) -> None:
    publisher.send_task(CPN_SCAN_DIRTY, ignore_result=True)
    async with running_app(settings) as client:
        await scrape(client)  # reads 1
    nothing_there = settings.model_copy(update={"redis_url": closed_port_url("redis")})
    async with running_app(nothing_there) as client:
        accepted = await post(client, deliver(new_event()))  # stored; its message is not sent
        found = await scrape(client)

    assert accepted.status_code == 200
    assert queue_lengths(found, "cpn") == {"cpn": 1}
    assert found.value("cpn_webhook_inbox_events", status="received") == 1


@pytest.fixture
def rabbitmq_url() -> str:
    """TEST_BROKER_URL when it is a RabbitMQ one, else the local RabbitMQ; skip if unreachable."""
    configured = os.environ.get("TEST_BROKER_URL", "")
    url = configured if configured.startswith("amqp") else LOCAL_RABBITMQ
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 5672)
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError as error:
        pytest.skip(f"RabbitMQ is not reachable at {address[0]}:{address[1]} ({error})")
    return url


@pytest.fixture
def rabbitmq_queue(rabbitmq_url: str) -> Iterator[Queue]:
    """A queue of this test alone (the broker may be shared), deleted afterwards; RabbitMQ
    also drops it on its own a few minutes after it was last used."""
    name = f"cpn-metrics-test-{uuid.uuid4().hex[:12]}"
    queue = Queue(
        name,
        Exchange(name, "direct", auto_delete=True),
        routing_key=name,
        queue_arguments={"x-expires": 300_000},
    )
    with Connection(rabbitmq_url) as connection:
        yield queue.bind(connection.default_channel)
        queue(connection.channel()).delete()


async def test_rabbitmq_queue_lengths_come_from_a_passive_declare(
    settings: Settings, rabbitmq_url: str, rabbitmq_queue: Queue
) -> None:
    # Publisher confirms: the broker has queued each message when publish returns.
    with Connection(rabbitmq_url, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel())
        for number in range(3):
            producer.publish(
                {"number": number},
                exchange=rabbitmq_queue.exchange,
                routing_key=rabbitmq_queue.routing_key,
                declare=[rabbitmq_queue],
            )
    never_declared = f"cpn-metrics-absent-{uuid.uuid4().hex[:12]}"
    on_rabbitmq = settings.model_copy(update={"celery_broker_url": rabbitmq_url})
    # The missing queue first: RabbitMQ closes that channel, the next declare needs a new one.
    gauges = BrokerGauges(on_rabbitmq, max_age=0, queues=[never_declared, rabbitmq_queue.name])
    try:
        await gauges.refresh_if_stale()
    finally:
        gauges.close()

    found = Scrape.parse(metrics.render()[0].decode())
    assert queue_lengths(found, rabbitmq_queue.name, never_declared) == {
        rabbitmq_queue.name: 3,
        never_declared: 0,
    }
