"""The publishing thread's hand-over from the event loop: bounded, never blocking."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import REGISTRY

from cpn_sync.settings import Settings
from tests.webhooks.conftest import WEBHOOK_QUEUE, enqueued_ids, task_messages
from tests.workers.conftest import wait_until
from webhooks.publisher import Publisher


def failures() -> float:
    return REGISTRY.get_sample_value("cpn_webhook_enqueue_failures_total") or 0.0


def test_a_full_hand_over_drops_and_counts_the_ids_instead_of_blocking(
    settings: Settings, broker: redis.Redis
) -> None:
    publisher = Publisher(settings, max_pending=2)  # not started yet: nothing is taken out
    before = failures()

    for ids in ([1], [2, 3], [4, 5]):
        publisher.submit(ids)

    assert failures() - before == 2  # the rows stay `received`; the sweeper enqueues them
    publisher.start()
    publisher.close()
    assert enqueued_ids(broker) == [1, 2, 3]


def message_ids(broker: redis.Redis) -> list[list[int]]:
    """The ids of each waiting message, in the order they were published."""
    return [message["args"][0] for message in reversed(task_messages(broker))]


@pytest.fixture
def lingering(settings: Settings) -> Iterator[Publisher]:
    """A running publisher that would hold a message back for up to 30 s: a test that sees a
    message sooner saw it sent at once."""
    publisher = Publisher(settings, linger=0.01, max_linger=30.0)
    publisher.start()
    yield publisher
    publisher.close()


def one_message_waiting(publisher: Publisher, broker: redis.Redis) -> None:
    """Publish [0] and leave it unconsumed: the workers are behind."""
    publisher.submit([0])
    wait_until(lambda: message_ids(broker) == [[0]], 10, "the first message published")


def test_an_idle_queue_gets_each_message_without_waiting_for_more(
    lingering: Publisher, broker: redis.Redis
) -> None:
    lingering.submit([1])

    wait_until(lambda: message_ids(broker) == [[1]], 10, "[1] published without lingering")


def test_while_messages_wait_in_the_queue_ids_are_gathered_into_fuller_messages(
    lingering: Publisher, broker: redis.Redis
) -> None:
    one_message_waiting(lingering, broker)

    for ids in ([2], [3, 4], [5]):
        lingering.submit(ids)
        time.sleep(0.1)  # ten times `linger`: each would have gone out alone
    lingering.close()  # publishes what it gathered, at once

    assert message_ids(broker) == [[0], [2, 3, 4, 5]]


def test_gathering_for_a_behind_queue_stops_at_a_full_message(
    lingering: Publisher, broker: redis.Redis, settings: Settings
) -> None:
    full = settings.event_batch_size
    one_message_waiting(lingering, broker)

    lingering.submit(list(range(1, full)))
    lingering.submit([full])

    wait_until(lambda: len(message_ids(broker)) == 2, 10, "the full message published")
    assert message_ids(broker)[1] == list(range(1, full + 1))


def test_gathering_ends_when_the_queue_empties(lingering: Publisher, broker: redis.Redis) -> None:
    one_message_waiting(lingering, broker)
    lingering.submit([2])
    time.sleep(0.1)  # held back: a message is waiting

    broker.delete(WEBHOOK_QUEUE)  # a worker took it

    wait_until(lambda: message_ids(broker) == [[2]], 10, "[2] published once nothing waits")
