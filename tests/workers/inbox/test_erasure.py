"""Erasure of payloads the service does not use (DESIGN.md section 3): an ignored event keeps no
payload, and `user.deleted` erases every stored payload about the user, whatever its type."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from cpn_sync.cli import main
from tests.workers.conftest import Processor
from tests.workers.factories import (
    deleted_event,
    event_row,
    example,
    store_event,
    user_data,
    user_event,
)

SECRET_CODE = "918273"


def email_created(clerk_id: str, address: str) -> dict[str, Any]:
    payload = example("email.created")
    payload["data"].update(user_id=clerk_id, to_email_address=address, subject=SECRET_CODE)
    return payload


def sms_created(clerk_id: str) -> dict[str, Any]:
    return {
        "object": "event",
        "type": "sms.created",
        "timestamp": 1716883200,
        "data": {"object": "sms_message", "id": "sms_1", "user_id": clerk_id,
                 "to_phone_number": "+15550001111", "message": f"Your code is {SECRET_CODE}"},
    }  # fmt: skip


def membership_created(clerk_id: str, address: str) -> dict[str, Any]:
    """organizationMembership.* names its user only in `public_user_data.user_id`."""
    return {
        "object": "event",
        "type": "organizationMembership.created",
        "timestamp": 1716883200,
        "data": {
            "object": "organization_membership",
            "id": "orgmem_1",
            "role": "org:member",
            "organization": {"id": "org_1", "name": "Acme", "created_by": "user_creator"},
            "public_user_data": {"user_id": clerk_id, "identifier": address,
                                 "first_name": "Zerlina", "last_name": "Quackenbush"},
        },
    }  # fmt: skip


def payment_attempt(clerk_id: str, address: str) -> dict[str, Any]:
    return {
        "object": "event",
        "type": "paymentAttempt.created",
        "timestamp": 1716883200,
        "data": {"id": "pa_1", "status": "pending",
                 "payer": {"id": "cpayer_1", "user_id": clerk_id, "email": address}},
    }  # fmt: skip


def show_payload(svix_id: str) -> str:
    result = CliRunner().invoke(main, ["events", "show", svix_id, "--payload"])
    assert result.exit_code == 0, result.output
    return result.output


class TestIgnoredEventsAreErased:
    @pytest.mark.parametrize(
        "payload",
        [
            email_created("user_a", "zerlina@example.org"),
            sms_created("user_a"),
            membership_created("user_a", "zerlina@example.org"),
            example("organization.created"),
        ],
        ids=lambda payload: payload["type"],
    )
    def test_a_type_with_no_handler_keeps_no_payload(
        self, engine: Engine, process: Processor, payload: dict[str, Any]
    ) -> None:
        event_id = store_event(engine, payload, svix_id="msg_unhandled")

        assert process(event_id) == "ignored"

        row = event_row(engine, event_id)
        assert row.erased
        assert row.redacted_at is not None
        assert row.event_type == payload["type"]  # the row and its outcome stay
        assert "is not handled" in row.last_error
        shown = show_payload("msg_unhandled")
        assert "(redacted)" in shown
        for value in (SECRET_CODE, "zerlina", "Zerlina", "+15550001111", "Acme"):
            assert value not in shown


class TestUserDeletedErasesEverything:
    def test_every_stored_payload_naming_the_user_is_erased(
        self, engine: Engine, process: Processor
    ) -> None:
        """Events of other types, stored and not applied yet when the user is deleted."""
        address = "zerlina@example.org"
        created = user_event("user.created", user_data("user_a", email=address))
        assert process(store_event(engine, created)) == "processed"
        about_a = {
            "email": store_event(engine, email_created("user_a", address), svix_id="msg_a_email"),
            "sms": store_event(engine, sms_created("user_a")),
            "membership": store_event(engine, membership_created("user_a", address)),
            "payment": store_event(engine, payment_attempt("user_a", address)),
        }
        about_b = store_event(engine, membership_created("user_b", "b@example.org"))

        assert process(store_event(engine, deleted_event("user_a"))) == "processed"

        for name, event_id in about_a.items():
            row = event_row(engine, event_id)
            assert row.clerk_user_id == "user_a", name
            assert row.erased, name
            assert row.redacted_at is not None, name
        assert not event_row(engine, about_b).erased
        shown = show_payload("msg_a_email")
        assert "(redacted)" in shown
        assert address not in shown
        assert SECRET_CODE not in shown
