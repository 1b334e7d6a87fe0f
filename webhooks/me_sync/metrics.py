"""Prometheus metrics of `POST /api/me/sync` (web process; multiprocess mode as the rest of
`webhooks.observability.metrics`). Labels are reasons and outcomes, never a user or a token."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ANSWERED = Counter(
    "cpn_me_sync_answered",
    "Calls answered 200 by onboarding status (none, completed, already_completed, failed), "
    "or 202 (pending).",
    ["outcome"],
)
REJECTED = Counter(
    "cpn_me_sync_rejected",
    "Calls answered 4xx/5xx, by reason (the 401s: missing_token, bad_signature, ...; "
    "404: deleted_user, unknown_user; 429: rate_limited).",
    ["reason"],
)
REQUEST_SECONDS = Histogram(
    "cpn_me_sync_request_seconds",
    "Time to answer POST /api/me/sync.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
