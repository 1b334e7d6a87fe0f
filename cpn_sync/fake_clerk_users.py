"""Deterministic users in the shape of Clerk's `User` schema, for the fake Clerk API.

The same seed gives the same users, so a test or a benchmark can name what it expects. About
one user in three carries browser onboarding data in `unsafe_metadata` (DESIGN.md section 4).
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
FIRST_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun")
LAST_NAMES = ("Almeida", "Brooks", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad")
EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: generated users were created after it


def clerk_id(prefix: str, *parts: object) -> str:
    """An id shaped like Clerk's (`user_` and 27 base62 characters), fixed by `parts`."""
    number = int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:20], "big")
    chars = []
    for _ in range(27):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return f"{prefix}_{''.join(chars)}"


def make_user(index: int, *, seed: int = 0, created_at: int | None = None) -> dict[str, Any]:
    """User number `index` of the generation `seed`, as GET /users/{user_id} returns it."""
    rng = random.Random(f"{seed}:{index}")
    user_id = clerk_id("user", seed, index)
    email_id = clerk_id("idn", seed, index)
    created = created_at if created_at is not None else EPOCH_MS + index * 60_000
    updated = created + rng.randrange(0, 30 * 86_400_000)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = {
        "id": email_id,
        "object": "email_address",
        "email_address": f"{first.lower()}.{index}.{seed}@example.com",
        "reserved": False,
        "verification": {
            "object": "verification_admin",
            "status": "verified",
            "strategy": "admin",
            "attempts": None,
            "expire_at": None,
        },
        "linked_to": [],
        "created_at": created,
        "updated_at": created,
    }
    unsafe: dict[str, Any] = {}
    if index % 3 == 0:
        unsafe["onboarding"] = {
            "sessionDataId": clerk_id("ssd", seed, index),
            "profile": {
                "firstName": first,
                "age": rng.randrange(18, 80),
                "ethnicity": rng.choice(("latina", "asian", "white", "black")),
                "rating": rng.randrange(0, 101) / 10,
            },
            "dataEntry": {
                "date": "2026-11-20",
                "cost": rng.randrange(0, 50_000) / 100,
                "time": rng.randrange(15, 240),
                "nuts": rng.randrange(0, 6),
                "notes": "generated",
            },
        }
    return {
        "id": user_id,
        "object": "user",
        "external_id": None,
        "primary_email_address_id": email_id,
        "primary_phone_number_id": None,
        "primary_web3_wallet_id": None,
        "username": None,
        "first_name": first,
        "last_name": last,
        "locale": None,
        "image_url": "https://img.clerk.com/generated",
        "has_image": False,
        "public_metadata": {},
        "private_metadata": {},
        "unsafe_metadata": unsafe,
        "email_addresses": [email],
        "phone_numbers": [],
        "web3_wallets": [],
        "passkeys": [],
        "password_enabled": bool(index % 2),
        "two_factor_enabled": False,
        "totp_enabled": False,
        "backup_code_enabled": False,
        "mfa_enabled_at": None,
        "mfa_disabled_at": None,
        "password_last_updated_at": None,
        "external_accounts": [],
        "saml_accounts": [],
        "enterprise_accounts": [],
        "organization_memberships": [],
        "last_sign_in_at": updated,
        "banned": False,
        "locked": False,
        "deprovisioned": False,
        "lockout_expires_in_seconds": None,
        "verification_attempts_remaining": None,
        "updated_at": updated,
        "created_at": created,
        "delete_self_enabled": True,
        "create_organization_enabled": True,
        "create_organizations_limit": None,
        "last_active_at": updated,
        "legal_accepted_at": None,
        "bypass_client_trust": False,
    }


def make_users(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """`count` users; every seventh shares its creation time with the one before (ties occur)."""
    users = []
    for index in range(count):
        created = EPOCH_MS + (index - (index % 7 == 6)) * 60_000
        users.append(make_user(index, seed=seed, created_at=created))
    return users
