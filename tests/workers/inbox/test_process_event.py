"""Dispatch and outcomes of `process_event`, whatever the event type."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, update

from cpn_sync.settings import get_settings
from cpn_sync.task_contract import VISIBILITY_TIMEOUT
from db.models import WebhookEvent
from tests.workers.conftest import Processor
from tests.workers.factories import event_row, example, store_event, user_data, user_event
from workers.core.tasks import retry_countdown
from workers.inbox.dispatch import HANDLERS
from workers.inbox.errors import EventNotFoundError


class TestDispatch:
    @pytest.mark.parametrize("name", ["email.created", "organization.created"])
    def test_unhandled_types_are_ignored_with_the_reason(
        self, engine: Engine, process: Processor, name: str
    ) -> None:
        event_id = store_event(engine, example(name))

        assert process(event_id) == "ignored"

        row = event_row(engine, event_id)
        assert row.status == "ignored"
        assert row.last_error == f"event type {name} is not handled"
        assert row.processed_at is not None

    def test_every_documented_type_has_a_handler(self) -> None:
        assert set(HANDLERS) == {
            "user.created",
            "user.updated",
            "user.deleted",
            "session.created",
            "session.pending",
            "session.ended",
            "session.removed",
            "session.revoked",
        }

    def test_envelope_without_data_fails_at_once(self, engine: Engine, process: Processor) -> None:
        event_id = store_event(engine, {"type": "user.created", "object": "event"})

        assert process(event_id) == "failed"

        row = event_row(engine, event_id)
        assert row.last_error == (
            "payload does not match a Clerk user.created: data: Field required"
        )
        assert row.attempts == 1

    def test_session_without_user_id_fails_naming_the_field(
        self, engine: Engine, process: Processor
    ) -> None:
        payload = example("session.created")
        del payload["data"]["user_id"]

        assert process(store_event(engine, payload)) == "failed"

    def test_redacted_payload_fails_instead_of_guessing(
        self, engine: Engine, process: Processor
    ) -> None:
        event_id = store_event(engine, user_event("user.created", user_data("u1", email="a@e.com")))
        with engine.begin() as connection:
            connection.execute(
                update(WebhookEvent).where(WebhookEvent.id == event_id).values(payload=None)
            )

        assert process(event_id) == "failed"
        assert "redacted" in event_row(engine, event_id).last_error

    def test_clerk_user_id_missing_on_the_row_is_taken_from_the_payload(
        self, engine: Engine, process: Processor
    ) -> None:
        event_id = store_event(engine, user_event("user.created", user_data("u1", email="a@e.com")))
        with engine.begin() as connection:
            connection.execute(
                update(WebhookEvent).where(WebhookEvent.id == event_id).values(clerk_user_id=None)
            )

        assert process(event_id) == "processed"
        assert event_row(engine, event_id).clerk_user_id == "u1"

    def test_unknown_event_id_is_reported(self, process: Processor) -> None:
        with pytest.raises(EventNotFoundError):
            process(424242)


class TestAttempts:
    def test_an_event_that_keeps_losing_its_worker_fails_after_the_limit(
        self, engine: Engine, process: Processor
    ) -> None:
        """A worker killed mid-event leaves the attempt counted (the claim is committed
        first); at the limit the event is failed instead of crashing workers forever."""
        event_id = store_event(engine, user_event("user.created", user_data("u1", email="a@e.com")))
        limit = get_settings().event_max_attempts
        with engine.begin() as connection:
            connection.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event_id)
                .values(status="processing", attempts=limit)
            )

        assert process(event_id, suspect=True) == "failed"

        row = event_row(engine, event_id)
        assert row.last_error == f"gave up after {limit} attempts without an outcome"
        assert row.attempts == limit + 1


class TestRetryCountdown:
    def test_backoff_grows_with_jitter_and_stays_far_below_the_visibility_timeout(
        self,
    ) -> None:
        maximum = get_settings().event_retry_backoff_max_seconds
        for retries in range(get_settings().event_max_retries + 1):
            delays = {retry_countdown(retries, maximum) for _ in range(50)}
            ceiling = min(maximum, 2**retries)
            assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
            assert len(delays) > 1  # jitter
        assert retry_countdown(30, 10**6) <= VISIBILITY_TIMEOUT / 4


class TestClerkTimestamps:
    def test_envelope_timestamp_in_seconds_or_milliseconds_is_the_same_instant(self) -> None:
        from cpn_sync.clerk import ClerkEvent

        seconds = ClerkEvent.model_validate(example("user.created"))  # 1716883200
        milliseconds = ClerkEvent.model_validate(
            example("user.created") | {"timestamp": 1716883200000}
        )

        assert seconds.occurred_at == milliseconds.occurred_at
        assert seconds.occurred_at is not None
        assert seconds.occurred_at.isoformat() == "2024-05-28T08:00:00+00:00"

    def test_data_times_must_be_epoch_milliseconds(
        self, engine: Engine, process: Processor
    ) -> None:
        data = user_data("u1", email="a@e.com", updated_at="yesterday")  # type: ignore[arg-type]
        event_id = store_event(engine, user_event("user.created", data))

        assert process(event_id) == "failed"
        assert "data.updated_at" in event_row(engine, event_id).last_error
