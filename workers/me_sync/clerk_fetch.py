"""The one Clerk client of a worker process for first-request sync: bounded for a caller who
waits (a few seconds, one retry, a short Retry-After), unlike the backfill's patient one."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from cpn_sync.settings import get_settings
from workers.clerk.api import ClerkClient
from workers.clerk.config import config_from

TIMEOUT_SECONDS = 5.0
MAX_ATTEMPTS = 2
MAX_RETRY_AFTER_SECONDS = 5.0


@functools.cache
def clerk_client() -> ClerkClient | None:
    """None without CLERK_SECRET_KEY: the user then comes only from the webhook."""
    config = config_from(get_settings())
    if config is None:
        return None
    bounded = dataclasses.replace(
        config,
        timeout_seconds=TIMEOUT_SECONDS,
        max_attempts=MAX_ATTEMPTS,
        max_throttled=1,
        max_retry_after_seconds=MAX_RETRY_AFTER_SECONDS,
        backoff_max_seconds=1.0,
    )
    return ClerkClient(bounded)


def fetch_user(client: ClerkClient, clerk_id: str) -> dict[str, Any] | None:
    """Clerk's `User`, or None when Clerk answers 404."""
    return client.get_user(clerk_id)
