"""The scheduled jobs, run in this process against the real database and broker queue."""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis
from sqlalchemy import Engine, insert, select, text, update

from cpn_sync.settings import Settings, get_settings
from cpn_sync.task_contract import (
    CANARIES,
    CPN_RECOMPUTE_ALL,
    CPN_SCAN_DIRTY,
    EXPIRE_SESSIONS,
    PROCESS_EVENT,
    REDACT_PAYLOADS,
    SWEEP_INBOX,
)
from db.models import DeletedUser, User, UserSession, WebhookEvent
from tests.workers.conftest import Processor
from tests.workers.factories import event_row, example, store_event, user_data, user_event
from workers.app import beat_schedule
from workers.core.celery_app import HARD_TIME_LIMIT
from workers.core.schedule import run_scheduled
from workers.inbox.retention import redact_old_payloads
from workers.inbox.sweep import (
    PROCESSING_MARGIN_SECONDS,
    default_processing_after,
    processing_after_seconds,
    sweep_inbox,
)
from workers.users.expiry import expire_sessions

NOW = dt.datetime.now(dt.UTC)


def ago(**delta: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(**delta)


def sweep(process: Processor) -> dict[str, int] | None:
    return run_scheduled(SWEEP_INBOX, 60, sweep_inbox, publish=process.publish)


def a_user_event(clerk_id: str = "u1") -> dict[str, Any]:
    return user_event("user.created", user_data(clerk_id, email=f"{clerk_id}@e.com"))


def set_row(engine: Engine, event_id: int, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(WebhookEvent).where(WebhookEvent.id == event_id).values(values))


class TestSweeper:
    def test_requeues_what_was_lost_and_releases_what_can_run(
        self, engine: Engine, process: Processor
    ) -> None:
        lost = store_event(engine, a_user_event("u1"), received_at=ago(seconds=45))
        fresh = store_event(engine, a_user_event("u2"), received_at=ago(seconds=5))
        abandoned = store_event(engine, a_user_event("u3"), received_at=ago(hours=3))
        set_row(engine, abandoned, status="processing", last_attempt_at=ago(hours=2))
        retrying = store_event(engine, a_user_event("u4"), received_at=ago(hours=3))
        set_row(engine, retrying, status="processing", last_attempt_at=ago(minutes=5))
        done = store_event(engine, a_user_event("u5"), received_at=ago(hours=3))
        set_row(engine, done, status="processed")
        arrived = store_event(engine, example("session.created"), received_at=ago(minutes=1))
        still_unknown = store_event(engine, session_for("user_unknown"), received_at=ago(minutes=1))
        set_row(engine, arrived, status="waiting")
        set_row(engine, still_unknown, status="waiting")
        deleted = store_event(engine, session_for("user_gone"), received_at=ago(minutes=1))
        set_row(engine, deleted, status="waiting")
        with engine.begin() as connection:
            connection.execute(
                insert(User).values(clerk_id="user_2g7np7Hrk0SN6kj5EDMLDaKNL0S", email="j@e.com")
            )
            connection.execute(insert(DeletedUser).values(clerk_id="user_gone"))

        counts = sweep(process)

        assert counts == {"requeued": 2, "released": 2, "queued": 0}
        assert sorted(process.follow_ups) == sorted(
            [
                (PROCESS_EVENT, [lost, True]),
                (PROCESS_EVENT, [abandoned, True]),
                (PROCESS_EVENT, [arrived]),
                (PROCESS_EVENT, [deleted]),
            ]
        )
        assert fresh not in process.released()
        assert retrying not in process.released()
        process.drain()
        assert [event_row(engine, i).status for i in (lost, abandoned, arrived, deleted)] == [
            "processed",
            "processed",
            "processed",
            "ignored",
        ]
        assert event_row(engine, still_unknown).status == "waiting"

    def test_skips_rows_a_running_task_has_locked(self, engine: Engine, process: Processor) -> None:
        lost = store_event(engine, a_user_event(), received_at=ago(minutes=2))
        with engine.connect() as other:
            other.execute(select(WebhookEvent.id).where(WebhookEvent.id == lost).with_for_update())
            counts = sweep(process)
            other.rollback()

        assert counts is not None
        assert counts["requeued"] == 0

    def test_does_not_pile_onto_a_backlog_in_the_queue(
        self, engine: Engine, process: Processor, redis_url: str
    ) -> None:
        store_event(engine, a_user_event(), received_at=ago(minutes=2))
        client = redis.Redis.from_url(redis_url)
        client.lpush("webhooks", *[b"{}"] * get_settings().sweep_batch_size)

        counts = sweep(process)

        assert counts == {"requeued": 0, "released": 0, "queued": get_settings().sweep_batch_size}
        assert process.follow_ups == []


class TestProcessingDeadline:
    """A `processing` row waits for its retry no longer than the longest legitimate wait: one
    attempt up to the hard time limit, then a retry delay up to the backoff cap."""

    def test_the_default_follows_the_backoff_cap_and_the_hard_time_limit(self) -> None:
        assert default_processing_after(300, 90) == 300 + 90 + PROCESSING_MARGIN_SECONDS
        assert default_processing_after(10, 90) == 10 + 90 + PROCESSING_MARGIN_SECONDS
        assert default_processing_after(300, 30) == 300 + 30 + PROCESSING_MARGIN_SECONDS
        derived = processing_after_seconds(Settings(event_retry_backoff_max_seconds=20))
        assert derived == 20 + HARD_TIME_LIMIT + PROCESSING_MARGIN_SECONDS
        assert processing_after_seconds(Settings()) < 10 * 60  # not the old hour
        assert processing_after_seconds(Settings(sweep_processing_after_seconds=7)) == 7

    def test_a_row_past_the_deadline_is_requeued_and_one_within_it_is_not(
        self, engine: Engine, process: Processor
    ) -> None:
        deadline = processing_after_seconds(get_settings())
        assert deadline == (
            get_settings().event_retry_backoff_max_seconds
            + HARD_TIME_LIMIT
            + PROCESSING_MARGIN_SECONDS
        )
        lost = store_event(engine, a_user_event("u1"), received_at=ago(hours=3))
        set_row(engine, lost, status="processing", last_attempt_at=ago(seconds=deadline + 30))
        waiting = store_event(engine, a_user_event("u2"), received_at=ago(hours=3))
        set_row(engine, waiting, status="processing", last_attempt_at=ago(seconds=deadline - 30))

        counts = sweep(process)

        assert counts == {"requeued": 1, "released": 0, "queued": 0}
        assert process.follow_ups == [(PROCESS_EVENT, [lost, True])]


class TestOncePerTick:
    def test_a_second_copy_of_the_same_tick_skips(self, engine: Engine, process: Processor) -> None:
        store_event(engine, a_user_event(), received_at=ago(minutes=2))

        first = sweep(process)
        second = sweep(process)

        assert first is not None
        assert first["requeued"] == 1
        assert second is None
        assert len(process.follow_ups) == 1

    def test_the_next_tick_runs(self, engine: Engine, process: Processor) -> None:
        assert sweep(process) is not None
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE scheduled_job_runs SET last_started_at = now() - interval '55 s'")
            )

        assert sweep(process) is not None

    def test_a_copy_running_elsewhere_holds_the_lock(
        self, engine: Engine, process: Processor
    ) -> None:
        with engine.connect() as other:
            other.execute(
                text("SELECT pg_advisory_xact_lock(2, hashtext(:name))"), {"name": SWEEP_INBOX}
            )
            assert sweep(process) is None
            other.rollback()
        assert sweep(process) is not None

    def test_every_job_is_scheduled_with_an_expiry(self) -> None:
        schedule = beat_schedule(get_settings())
        assert {entry["task"] for entry in schedule.values()} == {
            SWEEP_INBOX,
            EXPIRE_SESSIONS,
            REDACT_PAYLOADS,
            CPN_SCAN_DIRTY,
            CPN_RECOMPUTE_ALL,
            *CANARIES.values(),
        }
        assert schedule[SWEEP_INBOX]["schedule"] == 60
        interval_jobs = [e for name, e in schedule.items() if name != CPN_RECOMPUTE_ALL]
        assert all(e["options"]["expires"] == e["schedule"] for e in interval_jobs)
        assert schedule[CPN_RECOMPUTE_ALL]["options"]["expires"] == 3600


class TestSessionExpiry:
    def test_sessions_past_expiry_become_inactive_and_ended(
        self, engine: Engine, process: Processor
    ) -> None:
        process(store_event(engine, a_user_event("user_2g7np7Hrk0SN6kj5EDMLDaKNL0S")))
        past = example("session.created")  # expired in 2024
        process(store_event(engine, past))
        current = example("session.created")
        current["data"]["id"] = "sess_current"
        current["data"]["expire_at"] = int((NOW + dt.timedelta(days=1)).timestamp() * 1000)
        process(store_event(engine, current))

        counts = run_scheduled(EXPIRE_SESSIONS, 300, expire_sessions)

        assert counts == {"expired": 1}
        with engine.connect() as connection:
            rows = {r.session_id: r for r in connection.execute(select(UserSession)).all()}
        expired = rows["sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S"]
        assert expired.is_active is False
        assert expired.ended_at == expired.expires_at
        assert rows["sess_current"].is_active is True
        assert rows["sess_current"].ended_at is None


class TestPayloadRetention:
    def test_payloads_older_than_the_retention_are_redacted(self, engine: Engine) -> None:
        days = get_settings().webhook_retention_days
        old_at, new_at = ago(days=days, hours=1), ago(days=days - 1)
        old = store_event(engine, a_user_event("u1"), received_at=old_at, status="processed")
        new = store_event(engine, a_user_event("u2"), received_at=new_at, status="processed")

        counts = run_scheduled(REDACT_PAYLOADS, 3600, redact_old_payloads)

        assert counts == {"redacted": 1}
        old_row, new_row = event_row(engine, old), event_row(engine, new)
        assert old_row.erased
        assert old_row.redacted_at is not None
        assert old_row.event_type == "user.created"  # the row itself stays
        assert not new_row.erased
        assert new_row.redacted_at is None

    def test_only_applied_events_are_erased(self, engine: Engine) -> None:
        """A `failed`, `waiting` (or still open) event keeps its payload past the retention:
        it can still be replayed or released; only `processed` and `ignored` ones are erased."""
        old = ago(days=get_settings().webhook_retention_days, hours=1)
        ids = {
            status: store_event(engine, a_user_event(f"u_{status}"), received_at=old, status=status)
            for status in ("processed", "ignored", "failed", "waiting", "received", "processing")
        }

        counts = run_scheduled(REDACT_PAYLOADS, 3600, redact_old_payloads)

        assert counts == {"redacted": 2}
        erased = {status for status, event_id in ids.items() if event_row(engine, event_id).erased}
        assert erased == {"processed", "ignored"}


def session_for(clerk_id: str) -> dict[str, Any]:
    payload = example("session.created")
    payload["data"]["user_id"] = clerk_id
    payload["data"]["id"] = f"sess_{clerk_id}"
    payload["data"]["user"]["id"] = clerk_id
    return payload
