"""`cpn-sync events list / show / replay` against the real database and broker."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import Engine

from cpn_sync.cli import main
from cpn_sync.task_contract import PROCESS_EVENT
from tests.workers.conftest import Processor, take_queued
from tests.workers.factories import event_row, example, store_event, user_data, user_event


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["events", *args])


def good_user(clerk_id: str) -> dict[str, Any]:
    return user_event("user.created", user_data(clerk_id, email=f"{clerk_id}@e.com"))


class TestList:
    def test_filters_by_status_and_type(self, engine: Engine, process: Processor) -> None:
        process(store_event(engine, good_user("u1"), svix_id="msg_ok"))
        process(store_event(engine, example("user.created"), svix_id="msg_no_email"))
        process(store_event(engine, example("email.created"), svix_id="msg_email"))

        failed = cli("list", "--status", "failed")
        by_type = cli("list", "--type", "email.created")
        everything = cli("list")

        assert failed.exit_code == 0, failed.output
        assert "msg_no_email" in failed.output
        assert "user has no email address" in failed.output
        assert "msg_ok" not in failed.output
        assert "1 event(s)" in failed.output
        assert "msg_email" in by_type.output
        assert "msg_ok" not in by_type.output
        assert "3 event(s)" in everything.output

    def test_since_excludes_older_events(self, engine: Engine) -> None:
        store_event(engine, good_user("u1"), svix_id="msg_today")

        later = cli("list", "--since", "2999-01-01")
        earlier = cli("list", "--since", "2000-01-01T00:00:00")

        assert "0 event(s)" in later.output
        assert "msg_today" in earlier.output

    def test_json_for_scripts_and_one_user_only(self, engine: Engine, process: Processor) -> None:
        process(store_event(engine, good_user("user_a"), svix_id="msg_a"))
        process(store_event(engine, good_user("user_b"), svix_id="msg_b"))

        result = cli("list", "--json", "--user", "user_a")

        assert result.exit_code == 0, result.output
        listed = json.loads(result.output)
        assert [(e["svix_id"], e["clerk_user_id"], e["status"]) for e in listed] == [
            ("msg_a", "user_a", "processed")
        ]
        assert listed[0]["event_type"] == "user.created"
        assert listed[0]["received_at"].endswith("+00:00")
        assert "payload" not in listed[0]
        assert "user_a@e.com" not in result.output

    def test_unknown_status_is_a_usage_error(self) -> None:
        result = cli("list", "--status", "lost")
        assert result.exit_code == 2
        assert "Invalid value for '--status'" in result.output


class TestShow:
    def test_payload_only_when_asked(self, engine: Engine, process: Processor) -> None:
        process(store_event(engine, good_user("u1"), svix_id="msg_1"))

        plain = cli("show", "msg_1")
        with_payload = cli("show", "msg_1", "--payload")

        assert plain.exit_code == 0, plain.output
        assert "status:          processed" in plain.output
        assert "clerk_user_id:   u1" in plain.output
        assert "u1@e.com" not in plain.output
        assert "payload" not in plain.output
        assert "u1@e.com" in with_payload.output

    def test_unknown_svix_id_is_an_error(self) -> None:
        result = cli("show", "msg_nope")
        assert result.exit_code == 1
        assert "no stored event with svix id msg_nope" in result.output


class TestReplay:
    def test_all_failed_of_a_type_are_reset_and_enqueued(
        self, engine: Engine, process: Processor, redis_url: str
    ) -> None:
        failed_users = [store_event(engine, example("user.created")) for _ in range(2)]
        session = example("session.created")
        del session["data"]["user_id"]
        failed_session = store_event(engine, session)
        processed = store_event(engine, good_user("u1"))
        for event_id in [*failed_users, failed_session, processed]:
            process(event_id)

        result = cli("replay", "--status", "failed", "--type", "user.created")

        assert result.exit_code == 0, result.output
        assert "replayed 2 event(s); 2 enqueued" in result.output
        assert sorted(take_queued(redis_url, "webhooks")) == [
            (PROCESS_EVENT, [event_id]) for event_id in sorted(failed_users)
        ]
        for event_id in failed_users:
            row = event_row(engine, event_id)
            assert (row.status, row.attempts, row.last_error) == ("received", 0, None)
        assert event_row(engine, failed_session).status == "failed"
        assert event_row(engine, processed).status == "processed"

    def test_redacted_events_are_not_replayed(self, engine: Engine, process: Processor) -> None:
        process(store_event(engine, good_user("u1"), svix_id="msg_1"))
        process(store_event(engine, example("user.deleted") | {"data": {"id": "u1"}}))

        result = cli("replay", "msg_1")

        assert "replayed 0 event(s)" in result.output
        assert "1 skipped: payload redacted" in result.output

    def test_dry_run_names_the_events_and_changes_nothing(
        self, engine: Engine, process: Processor, redis_url: str
    ) -> None:
        failed = [store_event(engine, example("user.created"), svix_id=f"msg_f{i}") for i in (1, 2)]
        for event_id in failed:
            process(event_id)
        take_queued(redis_url, "webhooks")

        result = cli("replay", "--status", "failed", "--dry-run")

        assert result.exit_code == 0, result.output
        assert result.output == (
            "msg_f1\nmsg_f2\nwould replay 2 event(s); nothing changed (--dry-run)\n"
        )
        assert take_queued(redis_url, "webhooks") == []
        for event_id in failed:
            row = event_row(engine, event_id)
            assert (row.status, row.attempts) == ("failed", 1)

    def test_needs_exactly_one_selection(self) -> None:
        assert cli("replay").exit_code == 2
        assert cli("replay", "msg_1", "--status", "failed").exit_code == 2
        assert cli("replay", "--type", "user.created").exit_code == 2

    def test_unknown_svix_id_is_an_error(self) -> None:
        result = cli("replay", "msg_nope")
        assert result.exit_code == 1
        assert "no stored event with svix id msg_nope" in result.output
