"""What `POST /api/me/sync` keeps for the life of a web process: the token verifier (None
without CLERK_JWT_KEY: the endpoint then answers 503 `not_configured`), the rate limits, the
batched user lookups, the listener of finished runs and the count of calls in flight."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from cpn_sync.settings import Settings
from webhooks.me_sync.limits import SyncLimits
from webhooks.me_sync.lookups import UserLookups
from webhooks.me_sync.notifications import RunNotifications
from webhooks.me_sync.token import TokenVerifier, load_public_key


@dataclass
class PendingCalls:
    """Calls of this process between arrival and answer: SYNC_MAX_PENDING bounds them."""

    count: int = 0


@dataclass
class MeSync:
    verifier: TokenVerifier | None
    limits: SyncLimits
    lookups: UserLookups
    notifications: RunNotifications
    pending: PendingCalls = field(default_factory=PendingCalls)

    @classmethod
    def open(
        cls,
        settings: Settings,
        verifier: TokenVerifier | None,
        engine: AsyncEngine,
        application_name: str,
    ) -> MeSync:
        limits = SyncLimits(
            settings.sync_user_requests_per_minute, settings.sync_process_requests_per_second
        )
        lookups = UserLookups(engine)
        notifications = RunNotifications(settings.require_database_url(), application_name)
        if verifier is not None:  # without a key no call gets this far
            lookups.start()
            notifications.start()
        return cls(verifier, limits, lookups, notifications)

    async def close(self) -> None:
        await self.lookups.close()
        await self.notifications.close()


def token_verifier(settings: Settings) -> TokenVerifier | None:
    """None without CLERK_JWT_KEY; one that is not an RSA public key is a SettingsError (so
    `cpn-sync web` stops at start, before it opens anything)."""
    if settings.clerk_jwt_key is None:
        return None
    return TokenVerifier(load_public_key(settings.clerk_jwt_key), settings.authorized_parties)
