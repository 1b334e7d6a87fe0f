"""The worker process's one Redis client (created in the pool child that first needs it, so no
connection crosses a fork)."""

from __future__ import annotations

from functools import lru_cache

import redis

from cpn_sync.redis_client import require_redis_client
from cpn_sync.settings import get_settings


@lru_cache(maxsize=1)
def worker_redis() -> redis.Redis:
    return require_redis_client(get_settings(), "the canaries and CPN recompute requests")
