"""What a Clerk API client is given: the key, the URL, the budget and the retry bounds.

Built from CLERK_SECRET_KEY, CLERK_API_URL and CLERK_API_RATE_LIMIT (`config_from`); the key
is checked for shape here so that a pasted newline or a publishable key fails early with a
message that names the variable, never the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from cpn_sync.settings import Settings, SettingsError
from workers.clerk.errors import KEY_VARIABLE

DEFAULT_API_URL: Final = "https://api.clerk.com/v1"


@dataclass(frozen=True)
class ClerkConfig:
    """What the client needs; `secret_key` is CLERK_SECRET_KEY and never shown in a repr."""

    secret_key: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    rate_limit: int | None = None  # CLERK_API_RATE_LIMIT; None: by the kind of key
    rate_window_seconds: float = 10.0
    timeout_seconds: float = 30.0
    max_attempts: int = 5  # for 5xx, timeouts and connection errors
    max_throttled: int = 20  # 429 answers one call may wait out
    max_retry_after_seconds: float = 120.0
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0

    def __post_init__(self) -> None:
        key = self.secret_key
        if not key.startswith("sk_") or not key.isascii() or not key.isprintable() or " " in key:
            raise ValueError(f"{KEY_VARIABLE} must be a Clerk secret key (sk_test_… or sk_live_…)")
        if not self.api_url.startswith(("https://", "http://")):
            raise ValueError("CLERK_API_URL must be an http(s) URL, e.g. https://api.clerk.com/v1")
        if self.rate_limit is not None and self.rate_limit < 1:
            raise ValueError("CLERK_API_RATE_LIMIT must be at least 1")
        if self.max_attempts < 1 or self.max_throttled < 0:
            raise ValueError("max_attempts must be at least 1 and max_throttled not negative")

    @property
    def requests_per_window(self) -> int:
        """Clerk allows 100 requests per 10 s to a development instance, 1,000 in production."""
        if self.rate_limit is not None:
            return self.rate_limit
        return 100 if self.secret_key.startswith("sk_test_") else 1000


def config_from(settings: Settings) -> ClerkConfig | None:
    """The client's config from the settings; None when CLERK_SECRET_KEY is unset (the service
    then reads nothing from Clerk's API). A key of the wrong shape is a SettingsError."""
    if settings.clerk_secret_key is None:
        return None
    try:
        return ClerkConfig(
            secret_key=settings.clerk_secret_key,
            api_url=settings.clerk_api_url,
            rate_limit=settings.clerk_api_rate_limit,
        )
    except ValueError as error:
        raise SettingsError(str(error)) from None


def require_config(settings: Settings) -> ClerkConfig:
    """`config_from`, for the commands that cannot run without a key."""
    config = config_from(settings)
    if config is None:
        raise SettingsError(
            f"{KEY_VARIABLE} is not set: reading Clerk's Backend API needs the instance's "
            "secret key (sk_test_… or sk_live_…)"
        )
    return config
