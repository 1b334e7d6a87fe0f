"""Secret rotation: CLERK_WEBHOOK_SECRET holds several secrets while Clerk switches to a new one."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from cpn_sync.settings import Settings, SettingsError
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.webhooks.conftest import deliver, new_event, post, running_app, stored

pytestmark = pytest.mark.anyio

NEW_SECRET = "whsec_bmV3LXNlY3JldC1hZnRlci10aGUtcm90YXRpb24="
RETIRED_SECRET = "whsec_cmV0aXJlZC1zZWNyZXQtbm8tbG9uZ2VyLXZhbGlk"


async def test_message_signed_with_the_second_of_two_secrets_is_accepted(
    settings: Settings, clean_db: Engine
) -> None:
    rotating = settings.model_copy(
        update={"clerk_webhook_secret": f"{TEST_WEBHOOK_SECRET}, {NEW_SECRET}"}
    )
    old, new = (
        deliver(new_event(), secret=TEST_WEBHOOK_SECRET),
        deliver(new_event(), secret=NEW_SECRET),
    )
    async with running_app(rotating) as client:
        answers = [await post(client, old), await post(client, new)]
    assert [answer.json()["status"] for answer in answers] == ["accepted", "accepted"]
    assert {row.svix_id for row in stored(clean_db)} == {old.svix_id, new.svix_id}


async def test_message_signed_with_a_retired_secret_is_401(
    settings: Settings, clean_db: Engine
) -> None:
    rotated = settings.model_copy(
        update={"clerk_webhook_secret": f"{TEST_WEBHOOK_SECRET} {NEW_SECRET}"}
    )
    async with running_app(rotated) as client:
        response = await post(client, deliver(new_event(), secret=RETIRED_SECRET))
    assert (response.status_code, response.json()["error"]) == (401, "bad_signature")
    assert stored(clean_db) == []


@pytest.mark.parametrize("value", [None, "", " , ", "whsec_%%%not-base64%%%"])
async def test_app_refuses_to_start_without_a_usable_secret(
    value: str | None, settings: Settings
) -> None:
    broken = settings.model_copy(update={"clerk_webhook_secret": value})
    with pytest.raises(SettingsError, match="CLERK_WEBHOOK_SECRET"):
        async with running_app(broken):
            pass


async def test_app_refuses_more_inbox_writers_than_pool_connections(settings: Settings) -> None:
    greedy = settings.model_copy(update={"webhook_inbox_writers": 10, "db_pool_size": 10})
    with pytest.raises(SettingsError, match="WEBHOOK_INBOX_WRITERS"):
        async with running_app(greedy):
            pass
