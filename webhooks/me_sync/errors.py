"""Why a `POST /api/me/sync` got no 2xx: one reason per answer, rendered as the webhook's errors
are (`{"error": <reason>, "detail": <text>}`) and counted by reason in
`cpn_me_sync_rejected_total`. `detail` never quotes the request (token, body, user id)."""

from __future__ import annotations

from enum import StrEnum


class SyncReason(StrEnum):
    NO_BEARER = "missing_token"
    UNREADABLE = "malformed_token"
    BAD_ALGORITHM = "bad_algorithm"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "token_expired"
    NOT_YET_VALID = "token_not_yet_valid"
    ISSUED_IN_FUTURE = "token_issued_in_future"
    MISSING_CLAIM = "missing_claim"
    UNAUTHORIZED_PARTY = "unauthorized_party"
    BAD_SUBJECT = "bad_subject"
    NOT_JSON = "not_json"
    BAD_BODY = "bad_body"
    TOO_LARGE = "too_large"
    BODY_TIMEOUT = "body_timeout"
    DELETED_USER = "deleted_user"
    UNKNOWN_USER = "unknown_user"
    USER_NOT_STORABLE = "user_not_storable"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    NOT_CONFIGURED = "not_configured"


_UNAUTHORIZED = {
    SyncReason.NO_BEARER,
    SyncReason.UNREADABLE,
    SyncReason.BAD_ALGORITHM,
    SyncReason.BAD_SIGNATURE,
    SyncReason.EXPIRED,
    SyncReason.NOT_YET_VALID,
    SyncReason.ISSUED_IN_FUTURE,
    SyncReason.MISSING_CLAIM,
    SyncReason.UNAUTHORIZED_PARTY,
    SyncReason.BAD_SUBJECT,
}
_STATUS = {
    SyncReason.NOT_JSON: 400,
    SyncReason.BAD_BODY: 400,
    SyncReason.TOO_LARGE: 413,
    SyncReason.BODY_TIMEOUT: 408,
    SyncReason.DELETED_USER: 404,
    SyncReason.UNKNOWN_USER: 404,
    SyncReason.USER_NOT_STORABLE: 422,
    SyncReason.RATE_LIMITED: 429,
    SyncReason.OVERLOADED: 503,
    SyncReason.UNAVAILABLE: 503,
    SyncReason.NOT_CONFIGURED: 503,
}


class SyncError(Exception):
    """A call answered with `status`; `retry_after` (seconds) goes into `Retry-After`."""

    def __init__(self, reason: SyncReason, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return 401 if self.reason in _UNAUTHORIZED else _STATUS[self.reason]
