"""Migration 0007 (data only): rows stored before it get the user they name, and ignored
events lose their payload (DESIGN.md section 3)."""

from __future__ import annotations

import json

import psycopg

from cpn_sync.settings import libpq_url
from db.migrate import upgrade
from tests.services import TestServers

ROWS = [
    # svix id, type, status, data
    ("msg_member", "organizationMembership.created", "received",
     {"id": "orgmem_1", "public_user_data": {"user_id": "user_a"}}),
    ("msg_email", "email.created", "ignored", {"id": "ema_1", "user_id": "user_a"}),
    ("msg_payment", "paymentAttempt.created", "received",
     {"payer": {"user_id": "user_a", "email": "a@example.org"}}),
    ("msg_user", "user.updated", "processed", {"id": "user_b"}),
    ("msg_not_an_id", "sms.created", "received", {"user_id": {"nested": "x"}}),
]  # fmt: skip


def test_backfills_subject_users_and_erases_ignored_payloads(test_servers: TestServers) -> None:
    url = test_servers.new_database(migrate=False)
    upgrade(url, "0006")
    with psycopg.connect(libpq_url(url)) as conn:
        for svix_id, event_type, status, data in ROWS:
            payload = {"object": "event", "type": event_type, "data": data}
            conn.execute(
                "INSERT INTO webhook_events (svix_id, event_type, payload, status) "
                "VALUES (%s, %s, %s::jsonb, %s)",
                (svix_id, event_type, json.dumps(payload), status),
            )

    upgrade(url)

    with psycopg.connect(libpq_url(url)) as conn:
        rows = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT svix_id, clerk_user_id, payload IS NULL, redacted_at IS NOT NULL "
                "FROM webhook_events"
            )
        }
    assert rows == {
        "msg_member": ("user_a", False, False),
        "msg_email": ("user_a", True, True),
        "msg_payment": ("user_a", False, False),
        "msg_user": ("user_b", False, False),
        "msg_not_an_id": (None, False, False),
    }
