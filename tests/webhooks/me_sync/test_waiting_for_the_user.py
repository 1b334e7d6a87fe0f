"""Across processes, without CLERK_SECRET_KEY: a call answers `202 {"status": "pending"}` while
no worker has done its work (and is then answered `200` once one has), and a call for a user
not stored yet waits for the webhook that creates it, up to SYNC_WAIT_SECONDS."""

from __future__ import annotations

import asyncio

import pytest
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cpn_sync.settings import Settings
from db.me_sync import MeSyncRequest
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.webhooks.conftest import running_app
from tests.webhooks.me_sync.conftest import (
    APP_ORIGIN,
    PrivateKey,
    add_user,
    call,
    mint,
    new_clerk_id,
    public_pem,
)
from tests.webhooks.me_sync.test_with_worker import ONCE, body, deliver_and_wait, status_of
from tests.worker_process import WorkerProcess
from tests.workers.conftest import running, wait_until
from tests.workers.factories import user_data, user_event
from tests.workers.onboarding.factories import onboarding
from tests.workers.onboarding.test_user_created import rows

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture
def web_settings(
    database_url: str,
    broker_url: str,
    broker: redis.Redis,
    signing_key: PrivateKey,
    me_tables: Engine,
) -> Settings:
    """The web on a broker that only the workers these tests start consume (emptied by the
    `broker` fixture before and after)."""
    return Settings(
        database_url=database_url,
        redis_url=broker_url,
        celery_broker_url=None,
        clerk_webhook_secret=TEST_WEBHOOK_SECRET,
        log_format="json",
        clerk_jwt_key=public_pem(signing_key),
        clerk_authorized_parties=APP_ORIGIN,
        sync_wait_seconds=1.5,
    )


def keyless_worker(broker_url: str) -> WorkerProcess:
    process = WorkerProcess(queues="webhooks", extra_env={"REDIS_URL": broker_url})
    process.env.pop("CLERK_SECRET_KEY", None)
    return process


def applied(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return list(session.scalars(select(MeSyncRequest.applied)))


def outcomes(engine: Engine) -> list[str | None]:
    with Session(engine) as session:
        return list(session.scalars(select(MeSyncRequest.outcome).order_by(MeSyncRequest.id)))


async def test_202_while_no_worker_runs_then_200_once_one_has(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey, broker_url: str
) -> None:
    clerk_id = new_clerk_id()
    add_user(me_tables, clerk_id)
    data = onboarding()
    async with running_app(web_settings) as client:
        pending = await call(client, mint(signing_key, clerk_id), body(data))
        assert (pending.status_code, pending.json()) == (202, {"status": "pending"})
        assert rows(me_tables, clerk_id)["migrations"] == []
        with running(keyless_worker(broker_url)):
            await asyncio.to_thread(
                wait_until, lambda: applied(me_tables) == [1], 30, "the queued call worked"
            )
            again = await call(client, mint(signing_key, clerk_id), body(data))
    assert status_of(again) == "already_completed"  # the first call's run did it
    assert rows(me_tables, clerk_id) == ONCE


async def test_without_a_clerk_key_the_call_waits_for_the_webhook(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey, broker_url: str
) -> None:
    early, late = new_clerk_id(), new_clerk_id()
    data, later_data = onboarding(), onboarding()

    def created(clerk_id: str) -> dict[str, object]:
        return user_event("user.created", user_data(clerk_id, email=f"{clerk_id}@example.com"))

    async with running_app(web_settings) as client:
        with running(keyless_worker(broker_url)):

            async def webhook_soon() -> None:
                await asyncio.sleep(0.4)
                await deliver_and_wait(client, me_tables, created(early))

            answer, _ = await asyncio.gather(
                call(client, mint(signing_key, early), body(data)), webhook_soon()
            )
            assert status_of(answer) == "completed"

            # No webhook within the wait: pending, nothing written; once it came, done.
            pending = await call(client, mint(signing_key, late), body(later_data))
            assert pending.status_code == 202
            await asyncio.to_thread(
                wait_until, lambda: outcomes(me_tables) == ["done", "waiting"], 10, "gave up"
            )
            assert rows(me_tables, late)["user"] is False
            await deliver_and_wait(client, me_tables, created(late))
            done = await call(client, mint(signing_key, late), body(later_data))
    assert status_of(done) == "completed"
    assert rows(me_tables, early) == ONCE
    assert rows(me_tables, late) == ONCE
