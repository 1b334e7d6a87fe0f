"""The Celery configuration that keeps tasks from being lost (shared/NOTES.md)."""

from __future__ import annotations

from cpn_sync.settings import get_settings
from cpn_sync.task_contract import PROCESS_EVENT, TASK_QUEUES, VISIBILITY_TIMEOUT
from workers.app import app


def test_messages_are_acknowledged_late_and_requeued_when_a_worker_dies() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert conf.broker_connection_retry_on_startup is True


def test_visibility_timeout_is_set_in_all_three_places_above_every_delay() -> None:
    conf = app.conf
    assert conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT
    assert conf.result_backend_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT
    assert conf.visibility_timeout == VISIBILITY_TIMEOUT
    longest_task = max(conf.task_time_limit, *(t.time_limit or 0 for t in app.tasks.values()))
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert longest_task * 10 <= VISIBILITY_TIMEOUT
    assert get_settings().event_retry_backoff_max_seconds * 4 <= VISIBILITY_TIMEOUT


def test_every_task_has_a_name_a_queue_and_bounded_retries() -> None:
    ours = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert set(ours) == set(TASK_QUEUES)
    for name, task in ours.items():
        assert task.max_retries is not None, name
        route = app.amqp.router.route({}, name)
        assert route["queue"].name == TASK_QUEUES[name], name
    assert TASK_QUEUES[PROCESS_EVENT] == "webhooks"
