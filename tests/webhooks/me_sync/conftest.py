"""Fixtures of the first-request sync tests: an RSA key of the tests' own (tokens are minted
here, never stored), the endpoint's settings, and clean tables before and after each test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cpn_sync.settings import Settings
from db.me_sync import MeSyncRequest
from db.models import User
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.workers.conftest import truncate_all

ENDPOINT = "/api/me/sync"
APP_ORIGIN = "https://app.example.com"

PrivateKey = rsa.RSAPrivateKey


def new_key() -> PrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="session")
def signing_key() -> PrivateKey:
    return new_key()


def new_clerk_id() -> str:
    return f"user_{uuid.uuid4().hex}"


def mint(
    key: PrivateKey | bytes | str,
    sub: str | None = None,
    *,
    algorithm: str = "RS256",
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A session token as Clerk issues one (60 s), signed with `key`; `claims` override or
    add, `drop` removes."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": sub or new_clerk_id(),
        "sid": f"sess_{uuid.uuid4().hex}",
        "azp": APP_ORIGIN,
        "iss": "https://clerk.example.com",
        "iat": now,
        "nbf": now - 10,
        "exp": now + 60,
    }
    payload.update(claims)
    for name in drop:
        payload.pop(name, None)
    return jwt.encode(payload, key, algorithm=algorithm)


@pytest.fixture
def me_tables(engine: Engine) -> Iterator[Engine]:
    truncate_all(engine)
    yield engine
    truncate_all(engine)


@pytest.fixture
def me_settings(
    database_url: str, broker_url: str, signing_key: PrivateKey, me_tables: Engine
) -> Settings:
    """The web's settings; no worker consumes this broker (database 11 of the run's Redis)."""
    return Settings(
        database_url=database_url,
        redis_url=broker_url,
        celery_broker_url=None,
        clerk_webhook_secret=TEST_WEBHOOK_SECRET,
        log_format="json",
        clerk_jwt_key=public_pem(signing_key),
        clerk_authorized_parties=APP_ORIGIN,
        cors_allowed_origins=APP_ORIGIN,
        sync_wait_seconds=0.3,
    )


async def call(
    client: httpx.AsyncClient,
    token: str | None,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    if body is None:
        return await client.post(ENDPOINT, headers=sent)
    if isinstance(body, bytes):
        return await client.post(ENDPOINT, content=body, headers=sent)
    return await client.post(ENDPOINT, json=body, headers=sent)


def add_user(engine: Engine, clerk_id: str) -> int:
    with Session(engine) as session:
        user = User(clerk_id=clerk_id, email=f"{clerk_id}@example.com", email_verified=True)
        session.add(user)
        session.commit()
        return user.id


def stored_calls(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(MeSyncRequest)) or 0
