"""GET /healthz, /readyz and /metrics (in-process; the multiprocess sum is in test_web_process)."""

from __future__ import annotations

import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from cpn_sync.settings import Settings
from tests.webhooks.conftest import closed_port_url, deliver, new_event, post, running_app

pytestmark = pytest.mark.anyio


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


async def test_healthz_answers_while_the_process_runs(settings: Settings) -> None:
    no_database = settings.model_copy(update={"database_url": closed_port_url("postgresql")})
    async with running_app(no_database) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_is_200_when_database_and_broker_answer(
    settings: Settings, broker: redis.Redis
) -> None:
    async with running_app(settings) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "broker": "ok"}


@pytest.mark.parametrize("down", [("database",), ("broker",), ("database", "broker")], ids="+".join)
async def test_readyz_is_503_naming_what_failed(settings: Settings, down: tuple[str, ...]) -> None:
    broken: dict[str, object] = {}
    if "database" in down:
        broken["database_url"] = closed_port_url("postgresql")
    if "broker" in down:
        broken["redis_url"] = closed_port_url("redis")
    async with running_app(settings.model_copy(update=broken)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == list(down)
    for name in ("database", "broker"):
        assert body[name] == ("unavailable" if name in down else "ok")


async def test_metrics_count_outcomes_and_latency(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    before = {
        "accepted": sample("cpn_webhook_events_accepted_total"),
        "duplicate": sample("cpn_webhook_events_duplicate_total"),
        "bad_signature": sample("cpn_webhook_events_rejected_total", reason="bad_signature"),
        "requests": sample("cpn_webhook_request_seconds_count"),
    }
    delivery = deliver(new_event())
    forged = deliver(new_event())
    forged.body += b" "
    async with running_app(settings) as client:
        await post(client, delivery)
        await post(client, delivery)
        await post(client, forged)
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families["cpn_webhook_events_accepted"].samples[0].value == before["accepted"] + 1
    assert families["cpn_webhook_events_duplicate"].samples[0].value == before["duplicate"] + 1
    rejected = {
        item.labels["reason"]: item.value
        for item in families["cpn_webhook_events_rejected"].samples
    }
    assert rejected["bad_signature"] == before["bad_signature"] + 1
    assert sample("cpn_webhook_request_seconds_count") == before["requests"] + 3


async def test_inbox_gauges_report_rows_by_status_and_oldest_received_age(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    async with running_app(settings) as client:
        for _ in range(3):
            await post(client, deliver(new_event()))
        with clean_db.begin() as connection:
            connection.execute(
                text(
                    "UPDATE webhook_events SET received_at = now() - interval '90 seconds' "
                    "WHERE id = (SELECT min(id) FROM webhook_events)"
                )
            )
            connection.execute(
                text(
                    "UPDATE webhook_events SET status = 'failed' "
                    "WHERE id = (SELECT max(id) FROM webhook_events)"
                )
            )
        await client.get("/metrics")
    assert sample("cpn_webhook_inbox_events", status="received") == 2
    assert sample("cpn_webhook_inbox_events", status="failed") == 1
    assert sample("cpn_webhook_inbox_events", status="processed") == 0
    assert 90 <= sample("cpn_webhook_inbox_oldest_received_age_seconds") < 600


async def test_oldest_failed_and_waiting_events_age_is_exported(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    """Unresolved events keep their payload past the retention: their age must be visible."""
    async with running_app(settings) as client:
        for _ in range(3):
            await post(client, deliver(new_event()))
        with clean_db.begin() as connection:
            connection.execute(
                text(
                    "UPDATE webhook_events SET status = 'failed', "
                    "received_at = now() - interval '40 days' "
                    "WHERE id = (SELECT min(id) FROM webhook_events)"
                )
            )
            connection.execute(
                text(
                    "UPDATE webhook_events SET status = 'failed', "
                    "received_at = now() - interval '2 days' "
                    "WHERE id = (SELECT max(id) FROM webhook_events)"
                )
            )
        response = await client.get("/metrics")
    assert 'cpn_inbox_oldest_unresolved_age_seconds{status="waiting"} 0.0' in response.text
    age = sample("cpn_inbox_oldest_unresolved_age_seconds", status="failed")
    assert 40 * 86400 <= age < 40 * 86400 + 600


async def test_metrics_still_answer_when_the_database_is_down(settings: Settings) -> None:
    no_database = settings.model_copy(update={"database_url": closed_port_url("postgresql")})
    async with running_app(no_database) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "cpn_webhook_events_accepted_total" in response.text
