"""Across processes: a real `cpn-sync worker` applies a `user.created` with onboarding data, a
redelivery under a new svix id, and an operator's `cpn-sync events replay`; the data is
migrated once and one CPN recompute is requested, on the broker."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from cpn_sync.cli import main
from cpn_sync.task_contract import CPN_RECOMPUTE_USER, PROCESS_EVENT
from tests.worker_process import WorkerProcess
from tests.workers.conftest import running, wait_until
from tests.workers.factories import event_row, store_event
from tests.workers.onboarding.factories import Requests, entry, new_clerk_id, onboarding
from tests.workers.onboarding.test_user_created import created_with, rows, user_id_of
from workers.core.unit_of_work import send_task

pytestmark = pytest.mark.slow


def test_redelivery_and_replay_through_a_real_worker_migrate_once(
    worker_tables: Engine, recompute_requests: Requests
) -> None:
    clerk_id = new_clerk_id()
    payload = created_with(clerk_id, onboarding(dataEntry=[entry(), entry(nuts=0), entry()]))
    first = store_event(worker_tables, payload, svix_id="msg_onboarding_1")
    again = store_event(worker_tables, payload, svix_id="msg_onboarding_2")

    # Only the webhooks queue: the recompute requests stay on the broker for the test to read.
    with running(WorkerProcess(queues="webhooks")):
        for event_id in (first, again):
            send_task(PROCESS_EVENT, [event_id])
        wait_until(
            lambda: {event_row(worker_tables, e).status for e in (first, again)} == {"processed"},
            90,
            "both deliveries processed",
        )
        applied_at = event_row(worker_tables, first).processed_at

        replay = CliRunner().invoke(main, ["events", "replay", "msg_onboarding_1"])
        assert replay.exit_code == 0, replay.output

        wait_until(
            lambda: (
                event_row(worker_tables, first).status == "processed"
                and event_row(worker_tables, first).processed_at != applied_at
            ),
            90,
            "the replay processed",
        )

    assert rows(worker_tables, clerk_id) == {
        "user": True,
        "profiles": 1,
        "interactions": 3,
        "migrations": ["completed"],
    }
    assert recompute_requests() == [(CPN_RECOMPUTE_USER, [user_id_of(worker_tables, clerk_id)])]
