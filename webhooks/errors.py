"""Why a delivery was not accepted: one error type per answer, each carrying the svix id when known.

`RejectionError` is a 4xx (the delivery itself is wrong, nothing is stored);
`InboxUnavailableError` and `OverloadedError` are the 503s that make Clerk retry. All render as
the contract's JSON error `{"error", "detail"}`.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """The `error` code of a non-2xx answer, and the `reason` label of the rejection counter."""

    MISSING_HEADERS = "missing_headers"
    INVALID_HEADERS = "invalid_headers"
    NOT_JSON = "not_json"
    NOT_CLERK_EVENT = "not_clerk_event"
    BAD_SIGNATURE = "bad_signature"
    BAD_TIMESTAMP = "bad_timestamp"
    TOO_LARGE = "too_large"
    BODY_TIMEOUT = "body_timeout"
    INBOX_UNAVAILABLE = "inbox_unavailable"
    OVERLOADED = "overloaded"


STATUS = {
    Reason.MISSING_HEADERS: 400,
    Reason.INVALID_HEADERS: 400,
    Reason.NOT_JSON: 400,
    Reason.NOT_CLERK_EVENT: 400,
    Reason.BAD_SIGNATURE: 401,
    Reason.BAD_TIMESTAMP: 401,
    Reason.TOO_LARGE: 413,
    Reason.BODY_TIMEOUT: 408,
    Reason.INBOX_UNAVAILABLE: 503,
    Reason.OVERLOADED: 503,
}


class WebhookError(Exception):
    """A delivery that gets no 2xx. `detail` is safe to show and to log: it never quotes input."""

    def __init__(self, reason: Reason, detail: str, *, svix_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.svix_id = svix_id

    @property
    def status(self) -> int:
        return STATUS[self.reason]


class RejectionError(WebhookError):
    """The delivery is malformed, unsigned or too large: 4xx, and nothing is stored."""


class OverloadedError(WebhookError):
    """More webhook requests are pending in this process than WEBHOOK_MAX_PENDING: 503 with
    `Retry-After`, the body is not read and nothing is stored."""

    RETRY_AFTER_SECONDS = 5

    def __init__(self, limit: int) -> None:
        super().__init__(Reason.OVERLOADED, f"more than {limit} requests are pending; retry later")


class InboxUnavailableError(WebhookError):
    """The event could not be stored durably: 503, so that Clerk delivers it again."""

    def __init__(self, detail: str, *, svix_id: str | None = None) -> None:
        super().__init__(Reason.INBOX_UNAVAILABLE, detail, svix_id=svix_id)
