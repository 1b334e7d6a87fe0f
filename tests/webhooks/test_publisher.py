"""The publishing thread's hand-over from the event loop: bounded, never blocking."""

from __future__ import annotations

import redis
from prometheus_client import REGISTRY

from cpn_sync.settings import Settings
from tests.webhooks.conftest import enqueued_ids
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
