"""Logs: one structured line per request; no email, name, IP, metadata, payload or secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from cpn_sync.settings import Settings
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.services import SHARED
from tests.webhooks.conftest import deliver, new_event, post, running_app

pytestmark = pytest.mark.anyio

PAYLOADS = sorted((SHARED / "clerk-payloads").glob("*.json"))
PERSONAL_KEYS = {
    "email_address", "first_name", "last_name", "username", "name", "client_ip", "ip_address",
    "user_agent", "city", "phone_number", "firstName", "notes",
}  # fmt: skip


def personal_values(document: Any) -> set[str]:
    """Every string under a key that holds personal data, anywhere in the document."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key in PERSONAL_KEYS and isinstance(value, str) and len(value) > 2:
                found.add(value)
            found |= personal_values(value)
    elif isinstance(document, list):
        for item in document:
            found |= personal_values(item)
    return found


def test_payloads_hold_personal_data_to_look_for() -> None:
    """Guards the test below against searching for nothing."""
    assert len(PAYLOADS) >= 10
    values = set().union(*(personal_values(json.loads(path.read_bytes())) for path in PAYLOADS))
    assert {"example@example.org", "John", "Doe", "192.168.1.100"} <= values


async def test_logs_of_the_whole_module_hold_no_personal_data(
    settings: Settings, clean_db: Engine, broker: redis.Redis, capfd: pytest.CaptureFixture[str]
) -> None:
    samples = [new_event(kind) for kind in ("user.created", "session.created")]
    samples[0]["data"]["unsafe_metadata"] = {"onboarding": {"profile": {"firstName": "Zelda"}}}
    deliveries = [deliver(path.read_bytes()) for path in PAYLOADS] + [deliver(s) for s in samples]
    forged = deliver(PAYLOADS[0].read_bytes())
    forged.body = forged.body.replace(b"{", b"{ ", 1)
    async with running_app(settings) as client:
        for delivery in deliveries:
            assert (await post(client, delivery)).json()["status"] == "accepted"
        await post(client, deliveries[0])  # duplicate
        assert (await post(client, forged)).status_code == 401
        await client.get("/metrics")
        await client.get("/readyz")
    output = capfd.readouterr()
    logged = output.out + output.err

    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    per_request = [line for line in lines if line["event"].startswith("webhook.")]
    assert len(per_request) == len(deliveries) + 2
    for line in per_request:
        assert {"svix_id", "event_type", "outcome", "latency_ms"} <= line.keys()

    forbidden = set().union(*(personal_values(json.loads(d.body)) for d in deliveries))
    forbidden |= {TEST_WEBHOOK_SECRET, TEST_WEBHOOK_SECRET.removeprefix("whsec_"), "Zelda"}
    leaked = sorted(value for value in forbidden if value in logged)
    assert leaked == []
    assert "@" not in logged
    assert Path(PAYLOADS[0]).read_text()[:40] not in logged
