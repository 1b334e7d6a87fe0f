"""What `POST /api/me/sync` keeps for the life of a web process: the token verifier (None
without CLERK_JWT_KEY: the endpoint then answers 503 `not_configured`), the rate limits and
the count of calls in flight."""

from __future__ import annotations

from dataclasses import dataclass, field

from cpn_sync.settings import Settings
from webhooks.me_sync.limits import SyncLimits
from webhooks.me_sync.token import TokenVerifier, load_public_key


@dataclass
class PendingCalls:
    """Calls of this process between arrival and answer: SYNC_MAX_PENDING bounds them."""

    count: int = 0


@dataclass
class MeSync:
    verifier: TokenVerifier | None
    limits: SyncLimits
    pending: PendingCalls = field(default_factory=PendingCalls)

    @classmethod
    def from_settings(cls, settings: Settings) -> MeSync:
        """A CLERK_JWT_KEY that is not an RSA public key fails start-up (SettingsError)."""
        verifier = None
        if settings.clerk_jwt_key is not None:
            key = load_public_key(settings.clerk_jwt_key)
            verifier = TokenVerifier(key, settings.authorized_parties)
        limits = SyncLimits(
            settings.sync_user_requests_per_minute, settings.sync_process_requests_per_second
        )
        return cls(verifier, limits)
