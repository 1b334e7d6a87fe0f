"""Session-token verification of `POST /api/me/sync`: tokens minted here with the tests' own RSA
key; every refusal is a 401 with its reason, stores and enqueues nothing, is counted by reason,
and no token appears in the logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import redis
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from cpn_sync.settings import Settings
from tests.webhooks.conftest import running_app, task_messages
from tests.webhooks.me_sync.conftest import (
    PrivateKey,
    add_user,
    call,
    mint,
    new_clerk_id,
    new_key,
    public_pem,
    stored_calls,
)

pytestmark = pytest.mark.anyio


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key(key: PrivateKey, sub: str) -> str:
    """The classic confusion attack: HMAC keyed with the PEM public key that the server holds.
    Built by hand (PyJWT refuses to sign HS256 with a PEM key)."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "iat": now,
        "nbf": now - 10,
        "exp": now + 60,
        "azp": "https://app.example.com",
    }
    signed = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "."
    signed += _b64(json.dumps(claims).encode())
    mac = hmac.new(public_pem(key).encode(), signed.encode(), hashlib.sha256).digest()
    return signed + "." + _b64(mac)


def unsigned(sub: str) -> str:
    now = int(time.time())
    claims = {
        "sub": sub,
        "iat": now,
        "nbf": now - 10,
        "exp": now + 60,
        "azp": "https://app.example.com",
    }
    return (
        _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        + "."
        + _b64(json.dumps(claims).encode())
        + "."
    )


def tampered(token: str, sub: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = sub
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def refused_count(reason: str) -> float:
    return REGISTRY.get_sample_value("cpn_me_sync_rejected_total", {"reason": reason}) or 0.0


def refusals(key: PrivateKey, sub: str) -> dict[str, tuple[str | None, str]]:
    """Name of the case: (the token, the reason it is refused for)."""
    now = int(time.time())
    return {
        "expired": (mint(key, sub, exp=now - 10, iat=now - 70, nbf=now - 80), "token_expired"),
        "not yet valid": (mint(key, sub, nbf=now + 30), "token_not_yet_valid"),
        "issued in the future": (mint(key, sub, iat=now + 30), "token_issued_in_future"),
        "wrong key": (mint(new_key(), sub), "bad_signature"),
        "tampered subject": (tampered(mint(key, new_clerk_id()), sub), "bad_signature"),
        "wrong azp": (mint(key, sub, azp="https://evil.example.com"), "unauthorized_party"),
        "no azp": (mint(key, sub, drop=("azp",)), "unauthorized_party"),
        "alg none": (unsigned(sub), "bad_algorithm"),
        "HS256 keyed with the public key": (hs256_with_public_key(key, sub), "bad_algorithm"),
        "RS512": (mint(key, sub, algorithm="RS512"), "bad_algorithm"),
        "missing sub": (mint(key, sub, drop=("sub",)), "missing_claim"),
        "missing exp": (mint(key, sub, drop=("exp",)), "missing_claim"),
        "sub not a user id": (mint(key, "org_2abcdef"), "bad_subject"),
        "garbage": ("not-a-token", "malformed_token"),
        "garbage in three parts": ("abc.def.ghi", "malformed_token"),
        "no token": (None, "missing_token"),
    }


async def test_a_valid_token_of_a_known_user_is_answered_with_the_user(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    clerk_id = new_clerk_id()
    user_id = add_user(me_tables, clerk_id)
    now = int(time.time())
    async with running_app(me_settings) as client:
        fresh = await call(client, mint(signing_key, clerk_id))
        # 3 s past its expiry: within the 5 s of leeway for clocks that differ.
        late = await call(client, mint(signing_key, clerk_id, exp=now - 3, iat=now - 63))
    for response in (fresh, late):
        assert response.status_code == 200, response.text
        assert response.json() == {
            "user": {"clerk_id": clerk_id, "id": user_id},
            "onboarding": {"status": "none", "errors": []},
        }
    assert stored_calls(me_tables) == 0  # a known user without onboarding: nothing to store


async def test_every_refused_token_is_a_401_with_its_reason_and_nothing_stored(
    me_settings: Settings,
    me_tables: Engine,
    broker: redis.Redis,
    signing_key: PrivateKey,
    capfd: pytest.CaptureFixture[str],
) -> None:
    clerk_id = new_clerk_id()
    cases = refusals(signing_key, clerk_id)
    before = {reason: refused_count(reason) for _, reason in cases.values()}
    answers = {}
    async with running_app(me_settings) as client:
        for name, (token, _reason) in cases.items():
            body = {"onboarding": {"sessionDataId": "ssd_1", "profile": {"age": 30}}}
            answers[name] = await call(client, token, body)
    logged = "".join(capfd.readouterr())

    for name, (token, reason) in cases.items():
        response = answers[name]
        assert response.status_code == 401, (name, response.text)
        assert response.json()["error"] == reason, name
        assert set(response.json()) == {"error", "detail"}
        if token is not None:
            signature = token.split(".")[-1] or token  # an unsigned token: the whole of it
            assert token not in logged, name
            assert signature not in logged, name
    expected = {reason: 0 for _, reason in cases.values()}
    for _, reason in cases.values():
        expected[reason] += 1
    assert {reason: refused_count(reason) - before[reason] for reason in expected} == expected
    assert stored_calls(me_tables) == 0
    assert task_messages(broker) == []
    assert clerk_id not in logged


async def test_without_authorized_parties_a_token_without_azp_is_accepted(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    clerk_id = new_clerk_id()
    add_user(me_tables, clerk_id)
    settings = me_settings.model_copy(update={"clerk_authorized_parties": ""})
    async with running_app(settings) as client:
        response = await call(client, mint(signing_key, clerk_id, drop=("azp",)))
    assert response.status_code == 200, response.text


async def test_the_key_may_be_given_on_one_line_with_escaped_newlines(
    me_settings: Settings, me_tables: Engine, signing_key: PrivateKey
) -> None:
    clerk_id = new_clerk_id()
    add_user(me_tables, clerk_id)
    one_line = public_pem(signing_key).strip().replace("\n", "\\n")
    settings = me_settings.model_copy(update={"clerk_jwt_key": one_line})
    async with running_app(settings) as client:
        response = await call(client, mint(signing_key, clerk_id))
    assert response.status_code == 200, response.text


async def test_without_a_key_the_endpoint_says_it_is_not_configured(
    me_settings: Settings, signing_key: PrivateKey
) -> None:
    settings = me_settings.model_copy(update={"clerk_jwt_key": None})
    async with running_app(settings) as client:
        response = await call(client, mint(signing_key))
    assert response.status_code == 503
    assert response.json()["error"] == "not_configured"
