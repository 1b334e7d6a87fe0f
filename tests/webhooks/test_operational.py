"""GET /healthz, /readyz and /metrics (in-process; the multiprocess sum is in test_web_process)."""

from __future__ import annotations

import httpx
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


async def test_readyz_stays_200_when_only_the_broker_is_down_and_says_so(
    settings: Settings, clean_db: Engine
) -> None:
    """The web still stores every webhook: a broker outage must not take it out of the load
    balancer."""
    no_broker = settings.model_copy(update={"redis_url": closed_port_url("redis")})
    async with running_app(no_broker) as client:
        response = await client.get("/readyz")
        delivery = deliver(new_event())
        stored_answer = await post(client, delivery)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "broker": "unavailable"}
    assert stored_answer.json()["status"] == "accepted"


@pytest.mark.parametrize("down", [("database",), ("database", "broker")], ids="+".join)
async def test_readyz_is_503_only_when_the_database_is_down(
    settings: Settings, down: tuple[str, ...]
) -> None:
    broken: dict[str, object] = {"database_url": closed_port_url("postgresql")}
    if "broker" in down:
        broken["redis_url"] = closed_port_url("redis")
    async with running_app(settings.model_copy(update=broken)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database"]
    for name in ("database", "broker"):
        assert body[name] == ("unavailable" if name in down else "ok")


async def probe_200_times(
    client: httpx.AsyncClient, broker: redis.Redis, stat: str
) -> tuple[list[httpx.Response], int]:
    """200 probes after a first one; and by how much the broker's INFO `stat` grew meanwhile."""
    await client.get("/readyz")
    before = int(broker.info("stats")[stat])
    answers = [await client.get("/readyz") for _ in range(200)]
    return answers, int(broker.info("stats")[stat]) - before


async def test_readyz_reuses_one_broker_connection(settings: Settings, broker: redis.Redis) -> None:
    """200 probes, each checking again (no cache): no new Redis connection per probe."""
    async with running_app(settings, ready_max_age=0) as client:
        answers, connections = await probe_200_times(client, broker, "total_connections_received")
    assert {answer.status_code for answer in answers} == {200}
    assert {answer.json()["broker"] for answer in answers} == {"ok"}
    assert connections <= 2  # the INFO calls' own client reconnecting at most


async def test_readyz_answers_are_cached_for_a_second(
    settings: Settings, broker: redis.Redis
) -> None:
    """Probes arriving together cost the dependencies one check, not one each."""
    async with running_app(settings, ready_max_age=60) as client:
        answers, commands = await probe_200_times(client, broker, "total_commands_processed")
    assert {answer.status_code for answer in answers} == {200}
    assert commands <= 2  # the INFO command itself


class TestMetricsToken:
    async def test_metrics_need_the_bearer_token_when_it_is_set(self, settings: Settings) -> None:
        guarded = settings.model_copy(update={"metrics_token": "s3cret-token"})
        async with running_app(guarded) as client:
            missing = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            basic = await client.get("/metrics", headers={"Authorization": "Basic s3cret-token"})
            right = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert [missing.status_code, wrong.status_code, basic.status_code] == [401, 401, 401]
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "cpn_webhook_events_accepted_total" not in wrong.text
        assert right.status_code == 200
        assert "cpn_webhook_events_accepted_total" in right.text

    async def test_metrics_are_open_when_no_token_is_set(self, settings: Settings) -> None:
        async with running_app(settings) as client:
            response = await client.get("/metrics")
        assert response.status_code == 200


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
