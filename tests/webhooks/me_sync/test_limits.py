"""The bounds of `POST /api/me/sync`: body size and time, per-user and per-process rates (429
with Retry-After), calls in flight (503 with Retry-After), and what a call stores and enqueues
when no worker answers in time (202)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
from sqlalchemy import Engine

from cpn_sync.settings import Settings
from tests.webhooks.conftest import closed_port_url, running_app, task_messages
from tests.webhooks.me_sync.conftest import (
    PrivateKey,
    add_user,
    call,
    mint,
    new_clerk_id,
    stored_calls,
)

pytestmark = pytest.mark.anyio


def onboarding() -> dict[str, object]:
    return {"onboarding": {"sessionDataId": "ssd_limits", "profile": {"age": 30}}}


async def test_a_body_over_64_kib_is_a_413_and_nothing_is_stored(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    body = {"onboarding": {"sessionDataId": "ssd_big", "notes": "x" * (64 * 1024)}}
    async with running_app(me_settings) as client:
        response = await call(client, mint(signing_key), body)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert stored_calls(me_tables) == 0


async def test_a_body_that_does_not_arrive_in_time_is_a_408(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    async def slowly() -> AsyncIterator[bytes]:
        yield b'{"onboarding": '
        await asyncio.sleep(1.5)
        yield b"{}}"

    settings = me_settings.model_copy(update={"webhook_body_timeout_seconds": 0.5})
    async with running_app(settings) as client:
        response = await client.post(
            "/api/me/sync",
            content=slowly(),
            headers={"authorization": f"Bearer {mint(signing_key)}"},
        )
    assert response.status_code == 408
    assert response.json()["error"] == "body_timeout"
    assert stored_calls(me_tables) == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not_json"),
        (b"[1, 2]", "bad_body"),
        (b'{"onboarding": 3}', "bad_body"),
        (b'{"onboarding": {"notes": "a\\u0000b"}}', "bad_body"),  # JSONB cannot hold it
        (b'{"onboarding": ' + b'{"a": ' * 300 + b"1" + b"}" * 301, "bad_body"),  # too deep
    ],
)
async def test_a_body_of_the_wrong_shape_is_a_400(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey, body: bytes, reason: str
) -> None:
    async with running_app(me_settings) as client:
        response = await call(client, mint(signing_key), body)
    assert response.status_code == 400
    assert response.json()["error"] == reason
    assert stored_calls(me_tables) == 0


async def test_one_user_calling_too_often_gets_429_with_retry_after_and_others_do_not(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    busy, other = new_clerk_id(), new_clerk_id()
    add_user(me_tables, busy)
    add_user(me_tables, other)
    settings = me_settings.model_copy(update={"sync_user_requests_per_minute": 2})
    async with running_app(settings) as client:
        statuses = [(await call(client, mint(signing_key, busy))).status_code for _ in range(2)]
        refused = await call(client, mint(signing_key, busy))
        others = await call(client, mint(signing_key, other))
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert others.status_code == 200


async def test_the_process_budget_refuses_a_burst_of_many_users(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    users = [new_clerk_id() for _ in range(4)]
    for clerk_id in users:
        add_user(me_tables, clerk_id)
    settings = me_settings.model_copy(update={"sync_process_requests_per_second": 3})
    async with running_app(settings) as client:
        answers = [await call(client, mint(signing_key, clerk_id)) for clerk_id in users]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[-1].headers["retry-after"] == "1"


async def test_calls_in_flight_past_the_bound_are_503_with_retry_after(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    settings = me_settings.model_copy(update={"sync_max_pending": 1, "sync_wait_seconds": 2.0})
    async with running_app(settings) as client:
        waiting = asyncio.create_task(call(client, mint(signing_key), onboarding()))
        while stored_calls(me_tables) == 0:  # the first call is stored and waits (no worker)
            await asyncio.sleep(0.01)
        refused = await call(client, mint(signing_key), onboarding())
        first = await waiting
    assert refused.status_code == 503
    assert refused.json()["error"] == "overloaded"
    assert refused.headers["retry-after"] == "5"
    assert first.status_code == 202


async def test_without_a_worker_the_call_is_stored_enqueued_and_answered_202(
    me_settings: Settings, me_tables: Engine, broker: redis.Redis, signing_key: PrivateKey
) -> None:
    async with running_app(me_settings) as client:
        first = await call(client, mint(signing_key, "user_2slow"), onboarding())
        again = await call(client, mint(signing_key, "user_2slow"), onboarding())
    assert (first.status_code, first.json()) == (202, {"status": "pending"})
    assert (again.status_code, again.json()) == (202, {"status": "pending"})
    assert stored_calls(me_tables) == 1  # one row per (sub, sessionDataId)
    messages = task_messages(broker)
    assert [message["task"] for message in messages] == ["webhooks.sync_me"] * 2
    assert messages[0]["args"] == messages[1]["args"]


async def test_a_database_that_does_not_answer_is_a_503_with_retry_after(
    me_settings: Settings, signing_key: PrivateKey
) -> None:
    settings = me_settings.model_copy(update={"database_url": closed_port_url("postgresql")})
    async with running_app(settings) as client:
        response = await call(client, mint(signing_key), onboarding())
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert response.headers["retry-after"] == "5"
