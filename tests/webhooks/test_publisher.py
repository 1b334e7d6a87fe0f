"""The publishing thread's hand-over from the event loop: bounded, never blocking."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from prometheus_client import REGISTRY

from cpn_sync.settings import Settings
from tests.webhooks.conftest import WEBHOOK_QUEUE, enqueued_ids, task_messages
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


def test_an_idle_queue_gets_each_message_without_waiting_for_more(
    settings: Settings, broker: redis.Redis
) -> None:
    publisher = Publisher(settings, linger=0.01, max_linger=30.0)
    publisher.start()
    try:
        publisher.submit([1])
        # Far sooner than max_linger: with nothing queued, nothing is held back.
        assert wait_for(lambda: message_ids(broker) == [[1]], timeout=10.0)
    finally:
        publisher.close()
    assert message_ids(broker) == [[1]]


def test_while_messages_wait_in_the_queue_ids_are_gathered_into_fuller_messages(
    settings: Settings, broker: redis.Redis
) -> None:
    publisher = Publisher(settings, linger=0.01, max_linger=30.0)
    publisher.start()
    try:
        publisher.submit([1])
        assert wait_for(lambda: message_ids(broker) == [[1]], timeout=10.0)
        # The first message waits, unconsumed: the workers are behind.
        for ids in ([2], [3, 4], [5]):
            publisher.submit(ids)
            time.sleep(0.1)  # ten times `linger`: each would have gone out alone
    finally:
        publisher.close()  # publishes what it gathered, at once
    assert message_ids(broker) == [[1], [2, 3, 4, 5]]


def test_gathering_for_a_behind_queue_stops_at_a_full_message(
    settings: Settings, broker: redis.Redis
) -> None:
    full = settings.event_batch_size
    publisher = Publisher(settings, linger=0.01, max_linger=30.0)
    publisher.start()
    try:
        publisher.submit([0])
        assert wait_for(lambda: len(message_ids(broker)) == 1, timeout=10.0)
        publisher.submit(list(range(1, full)))
        publisher.submit([full])
        # A full message goes out without waiting for max_linger.
        assert wait_for(lambda: len(message_ids(broker)) == 2, timeout=10.0)
    finally:
        publisher.close()
    assert message_ids(broker)[1] == list(range(1, full + 1))


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_gathering_ends_when_the_queue_empties(settings: Settings, broker: redis.Redis) -> None:
    publisher = Publisher(settings, linger=0.01, max_linger=30.0)
    publisher.start()
    try:
        publisher.submit([1])
        assert wait_for(lambda: message_ids(broker) == [[1]], timeout=10.0)
        publisher.submit([2])
        time.sleep(0.1)  # held back: a message is waiting
        broker.delete(WEBHOOK_QUEUE)  # a worker took it
        # Far sooner than max_linger: nothing waits any more, so nothing is held back.
        assert wait_for(lambda: message_ids(broker) == [[2]], timeout=10.0)
    finally:
        publisher.close()
