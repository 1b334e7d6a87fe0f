"""Across processes: the web in this process, a real `cpn-sync worker` and a fake Clerk on
loopback. What a caller of `POST /api/me/sync` sees, and what the database then holds: the
onboarding data migrated once whatever else arrives (a repeat, a concurrent duplicate, the
webhook's `user.created` before, after or during), bad fields named with nothing written, a
user only Clerk knows created, and deleted or unknown users refused."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cpn_sync import fake_clerk as fake_clerk_server
from cpn_sync.fake_clerk import FakeClerk, RunningFake
from cpn_sync.fake_clerk_users import make_user
from cpn_sync.settings import Settings
from db.models import DeletedUser, User, WebhookEvent
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.webhooks.conftest import deliver, post, running_app
from tests.webhooks.me_sync.conftest import (
    APP_ORIGIN,
    PrivateKey,
    add_user,
    call,
    mint,
    new_clerk_id,
    public_pem,
    stored_calls,
)
from tests.worker_process import WorkerProcess
from tests.workers.conftest import purge_queues, running, wait_until
from tests.workers.factories import deleted_event
from tests.workers.onboarding.factories import entry, onboarding
from tests.workers.onboarding.test_user_created import created_with, rows

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

CLERK_KEY = "sk_test_me_sync_tests_0123456789abcdef"


@pytest.fixture(scope="module")
def fake_clerk() -> Iterator[RunningFake]:
    with fake_clerk_server.running(FakeClerk(secret_key=CLERK_KEY)) as served:
        yield served


@pytest.fixture(scope="module")
def worker(fake_clerk: RunningFake) -> Iterator[WorkerProcess]:
    """One worker for the module, reading the fake Clerk; it consumes the webhooks queue."""
    extra = {"CLERK_SECRET_KEY": CLERK_KEY, "CLERK_API_URL": fake_clerk.api_url}
    with running(WorkerProcess(queues="webhooks", extra_env=extra)) as process:
        yield process


@pytest.fixture
def web_settings(
    database_url: str,
    redis_url: str,
    signing_key: PrivateKey,
    me_tables: Engine,
    worker: WorkerProcess,
) -> Iterator[Settings]:
    """The web on the worker's broker."""
    yield Settings(
        database_url=database_url,
        redis_url=redis_url,
        celery_broker_url=None,
        clerk_webhook_secret=TEST_WEBHOOK_SECRET,
        log_format="json",
        clerk_jwt_key=public_pem(signing_key),
        clerk_authorized_parties=APP_ORIGIN,
        sync_wait_seconds=15,
    )
    purge_queues(redis_url)


def body(data: dict[str, Any]) -> dict[str, Any]:
    return {"onboarding": data}


def status_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    status: str = response.json()["onboarding"]["status"]
    return status


def processed(engine: Engine, svix_id: str) -> bool:
    with Session(engine) as session:
        status = session.scalar(select(WebhookEvent.status).where(WebhookEvent.svix_id == svix_id))
    return status == "processed"


async def deliver_and_wait(client: httpx.AsyncClient, engine: Engine, event: Any) -> None:
    delivery = deliver(event)
    assert (await post(client, delivery)).status_code == 200
    await asyncio.to_thread(
        wait_until, lambda: processed(engine, delivery.svix_id), 30, "the webhook processed"
    )


ONCE = {"user": True, "profiles": 1, "interactions": 1, "migrations": ["completed"]}


async def test_onboarding_is_completed_once_then_already_completed(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    clerk_id = new_clerk_id()
    user_id = add_user(me_tables, clerk_id)
    data = onboarding()
    async with running_app(web_settings) as client:
        first = await call(client, mint(signing_key, clerk_id), body(data))
        again = await call(client, mint(signing_key, clerk_id), body(data))
    assert first.json() == {
        "user": {"clerk_id": clerk_id, "id": user_id},
        "onboarding": {"status": "completed", "errors": []},
    }
    assert status_of(again) == "already_completed"
    assert rows(me_tables, clerk_id) == ONCE


async def test_a_concurrent_duplicate_is_already_completed(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    clerk_id = new_clerk_id()
    add_user(me_tables, clerk_id)
    data = onboarding()
    async with running_app(web_settings) as client:
        answers = await asyncio.gather(
            *(call(client, mint(signing_key, clerk_id), body(data)) for _ in range(2))
        )
    assert sorted(status_of(answer) for answer in answers) == ["already_completed", "completed"]
    assert rows(me_tables, clerk_id) == ONCE


async def test_bad_fields_fail_the_migration_each_named_and_nothing_is_written(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    clerk_id = new_clerk_id()
    add_user(me_tables, clerk_id)
    data = onboarding(
        profile={"firstName": "Ana", "age": 12, "ethnicity": "latina", "rating": 11},
        dataEntry=[entry(), entry(nuts=9)],
    )
    async with running_app(web_settings) as client:
        answer = await call(client, mint(signing_key, clerk_id), body(data))
    assert status_of(answer) == "failed"
    errors = answer.json()["onboarding"]["errors"]
    assert {error["field"] for error in errors} == {
        "profile.age",
        "profile.rating",
        "dataEntry[1].nuts",
    }
    assert all(error["message"] for error in errors)
    assert rows(me_tables, clerk_id) == {
        "user": True,
        "profiles": 0,
        "interactions": 0,
        "migrations": ["failed"],
    }


async def test_a_user_only_clerk_knows_becomes_a_row_through_the_call_alone(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey, fake_clerk: RunningFake
) -> None:
    clerk_user = make_user(1, seed=uuid.uuid4().int % 1_000_000)
    clerk_user["unsafe_metadata"] = {}
    clerk_id = clerk_user["id"]
    fake_clerk.fake.add_user(clerk_user)
    data = onboarding()
    async with running_app(web_settings) as client:
        answer = await call(client, mint(signing_key, clerk_id), body(data))
        again = await call(client, mint(signing_key, clerk_id))
    with Session(me_tables) as session:
        user = session.scalars(select(User).where(User.clerk_id == clerk_id)).one()
    assert answer.json() == {
        "user": {"clerk_id": clerk_id, "id": user.id},
        "onboarding": {"status": "completed", "errors": []},
    }
    assert user.email == clerk_user["email_addresses"][0]["email_address"]
    assert again.json()["user"] == {"clerk_id": clerk_id, "id": user.id}
    assert rows(me_tables, clerk_id) == ONCE
    fetched = [r for r in fake_clerk.fake.recorded() if r.path == f"/v1/users/{clerk_id}"]
    assert len(fetched) == 1  # the second call found the row


async def test_the_same_onboarding_in_clerks_metadata_and_the_call_is_completed_once(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey, fake_clerk: RunningFake
) -> None:
    clerk_user = make_user(2, seed=uuid.uuid4().int % 1_000_000)
    data = onboarding()
    clerk_user["unsafe_metadata"] = {"onboarding": data}
    fake_clerk.fake.add_user(clerk_user)
    async with running_app(web_settings) as client:
        answer = await call(client, mint(signing_key, clerk_user["id"]), body(data))
    assert status_of(answer) == "completed"  # this call's run did it, from either copy
    assert rows(me_tables, clerk_user["id"]) == ONCE


async def test_a_user_clerk_has_without_an_email_address_is_422_and_not_stored(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey, fake_clerk: RunningFake
) -> None:
    clerk_user = make_user(3, seed=uuid.uuid4().int % 1_000_000)
    clerk_user.update(email_addresses=[], primary_email_address_id=None)
    fake_clerk.fake.add_user(clerk_user)
    async with running_app(web_settings) as client:
        answer = await call(client, mint(signing_key, clerk_user["id"]), body(onboarding()))
    assert answer.status_code == 422
    assert answer.json()["error"] == "user_not_storable"
    assert "email" in answer.json()["detail"]
    assert rows(me_tables, clerk_user["id"])["user"] is False


async def test_a_user_whose_address_another_stored_user_holds_is_pending(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey, fake_clerk: RunningFake
) -> None:
    holder = new_clerk_id()
    add_user(me_tables, holder)  # its address: f"{holder}@example.com"
    clerk_user = make_user(4, seed=uuid.uuid4().int % 1_000_000)
    clerk_user["email_addresses"][0]["email_address"] = f"{holder}@example.com"
    fake_clerk.fake.add_user(clerk_user)
    async with running_app(web_settings) as client:
        answer = await call(client, mint(signing_key, clerk_user["id"]), body(onboarding()))
    assert (answer.status_code, answer.json()) == (202, {"status": "pending"})
    assert holder not in answer.text
    assert rows(me_tables, clerk_user["id"])["user"] is False


async def test_a_user_clerk_does_not_know_is_404_and_nothing_is_stored(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    clerk_id = new_clerk_id()
    async with running_app(web_settings) as client:
        answer = await call(client, mint(signing_key, clerk_id), body(onboarding()))
    assert answer.status_code == 404
    assert answer.json()["error"] == "unknown_user"
    assert rows(me_tables, clerk_id) == {
        "user": False,
        "profiles": 0,
        "interactions": 0,
        "migrations": [],
    }
    with Session(me_tables) as session:
        assert session.scalar(select(func.count()).select_from(DeletedUser)) == 0
    assert stored_calls(me_tables) == 0  # not even the call


async def test_a_deleted_user_is_404_and_never_comes_back(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey, fake_clerk: RunningFake
) -> None:
    clerk_id = new_clerk_id()
    add_user(me_tables, clerk_id)
    async with running_app(web_settings) as client:
        before = await call(client, mint(signing_key, clerk_id), body(onboarding()))
        assert status_of(before) == "completed"
        assert stored_calls(me_tables) == 1
        await deliver_and_wait(client, me_tables, deleted_event(clerk_id))
        assert stored_calls(me_tables) == 0  # erased with the user
        without = await call(client, mint(signing_key, clerk_id))
        with_data = await call(client, mint(signing_key, clerk_id), body(onboarding()))
    for answer in (without, with_data):
        assert answer.status_code == 404
        assert answer.json()["error"] == "deleted_user"
    with Session(me_tables) as session:
        assert session.scalar(select(User.id).where(User.clerk_id == clerk_id)) is None


@pytest.mark.parametrize("when", ["before", "after", "during"])
async def test_the_webhook_with_the_same_onboarding_migrates_nothing_twice(
    web_settings: Settings, me_tables: Engine, signing_key: PrivateKey, when: str
) -> None:
    clerk_id = new_clerk_id()
    data = onboarding()
    created = created_with(clerk_id, data)
    async with running_app(web_settings) as client:
        if when == "before":
            await deliver_and_wait(client, me_tables, created)
            answer = await call(client, mint(signing_key, clerk_id), body(data))
            assert status_of(answer) == "already_completed"
        elif when == "after":
            add_user(me_tables, clerk_id)
            answer = await call(client, mint(signing_key, clerk_id), body(data))
            assert status_of(answer) == "completed"
            await deliver_and_wait(client, me_tables, created)
        else:
            add_user(me_tables, clerk_id)
            answer, _ = await asyncio.gather(
                call(client, mint(signing_key, clerk_id), body(data)),
                deliver_and_wait(client, me_tables, created),
            )
            assert status_of(answer) in {"completed", "already_completed"}
    assert rows(me_tables, clerk_id) == ONCE


def test_the_worker_reads_the_fake_clerk(worker: WorkerProcess) -> None:
    """Guards the tests above: the worker was given the fake's key and URL."""
    assert worker.env["CLERK_SECRET_KEY"] == CLERK_KEY
    assert os.environ.get("CLERK_SECRET_KEY") is None
