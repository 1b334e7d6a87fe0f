"""CORS of `/api/me/sync` for the app's origins (CORS_ALLOWED_ORIGINS), and only there."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from cpn_sync.settings import Settings
from tests.webhooks.conftest import running_app
from tests.webhooks.me_sync.conftest import (
    APP_ORIGIN,
    ENDPOINT,
    PrivateKey,
    add_user,
    call,
    mint,
    new_clerk_id,
)

pytestmark = pytest.mark.anyio
OTHER_ORIGIN = "https://elsewhere.example.net"


def preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }


async def test_the_app_origin_preflight_is_answered_and_another_origin_refused(
    me_settings: Settings,
) -> None:
    async with running_app(me_settings) as client:
        allowed = await client.options(ENDPOINT, headers=preflight(APP_ORIGIN))
        refused = await client.options(ENDPOINT, headers=preflight(OTHER_ORIGIN))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def test_only_the_app_origin_may_read_the_answer(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    clerk_id = new_clerk_id()
    add_user(me_tables, clerk_id)
    async with running_app(me_settings) as client:
        mine = await call(client, mint(signing_key, clerk_id), headers={"origin": APP_ORIGIN})
        theirs = await call(client, mint(signing_key, clerk_id), headers={"origin": OTHER_ORIGIN})
        webhook = await client.options("/webhooks/clerk", headers=preflight(APP_ORIGIN))
    assert mine.status_code == 200
    assert mine.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "access-control-allow-origin" not in theirs.headers
    assert "access-control-allow-origin" not in webhook.headers  # CORS is for /api/ alone
