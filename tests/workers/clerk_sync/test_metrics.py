"""What the jobs record is what the web's `/metrics` reports (DESIGN.md section 9)."""

from __future__ import annotations

import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from cpn_sync.fake_clerk import FakeClerk
from cpn_sync.settings import Settings
from tests.webhooks.conftest import running_app
from workers.clerk.api import ClerkClient
from workers.clerk.backfill import backfill
from workers.clerk.reconcile import reconcile


def _scrape(database_url: str, redis_url: str) -> dict[str, dict[str, float]]:
    """The web's /metrics: each family's samples by their one label's value."""

    async def get() -> str:
        settings = Settings(database_url=database_url, redis_url=redis_url)
        async with running_app(settings) as client:
            return (await client.get("/metrics")).text

    families = text_string_to_metric_families(asyncio.run(get()))
    return {
        family.name: {next(iter(s.labels.values()), ""): s.value for s in family.samples}
        for family in families
        if family.name.startswith("cpn_clerk_")
    }


def test_drift_and_last_success_are_reported(
    engine: Engine, fake: FakeClerk, client: ClerkClient, database_url: str, redis_url: str
) -> None:
    started = time.time()
    backfill(client)
    for user_id in sorted(fake.users)[:3]:
        fake.delete_user(user_id)
    fake.update_user(sorted(fake.users)[0], first_name="Stale")
    reconcile(client)
    metrics = _scrape(database_url, redis_url)

    assert metrics["cpn_clerk_drift_users"] == {"missing": 0, "stale": 1, "extra": 3}
    synced = metrics["cpn_clerk_last_sync_timestamp_seconds"]
    assert started - 5 <= synced["backfill"] <= time.time() + 5
    assert started - 5 <= synced["reconcile"] <= time.time() + 5
