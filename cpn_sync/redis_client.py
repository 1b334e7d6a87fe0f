"""The one Redis client factory (web and workers): the Redis of REDIS_URL, which holds the
canaries' times and the CPN recompute requests, also when the broker is RabbitMQ."""

from __future__ import annotations

import redis

from cpn_sync.settings import Settings, SettingsError


def redis_client(settings: Settings, *, timeout: float = 2.0) -> redis.Redis | None:
    """A client with connect and read timeouts; None when REDIS_URL is not set."""
    if not settings.redis_url:
        return None
    return redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout
    )


def require_redis_client(settings: Settings, needed_for: str) -> redis.Redis:
    """As `redis_client`, for a feature that cannot work without it: a missing REDIS_URL is a
    `SettingsError` that says what needs it."""
    client = redis_client(settings)
    if client is None:
        raise SettingsError(f"REDIS_URL is not set: {needed_for} needs Redis")
    return client
