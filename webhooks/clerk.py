"""`POST /webhooks/clerk`: read at most WEBHOOK_MAX_BYTES, verify, parse, store, answer.

`200 accepted` only once the row is committed; `200 duplicate` for an svix id already stored;
4xx (nothing stored) for a delivery that is too large, unsigned or not a Clerk event, and `408`
for a body not received within WEBHOOK_BODY_TIMEOUT_SECONDS; `503` when the row could not be
written, or (with `Retry-After`) when more than WEBHOOK_MAX_PENDING requests are pending in this
process, so that Clerk delivers it again. The task message is published by the inbox's writer
after the commit, never by the request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cpn_sync.logs import get_logger
from webhooks.body import read_limited_body
from webhooks.envelope import SecondPassNeeded, parse_envelope
from webhooks.errors import InboxUnavailableError, OverloadedError, Reason, WebhookError
from webhooks.inbox import InboxEntry
from webhooks.observability import metrics
from webhooks.services import Services, services
from webhooks.signature import MAX_SVIX_ID_LENGTH, delivery_id

log = get_logger(__name__)


async def receive_clerk_webhook(request: Request) -> Response:
    started = time.perf_counter()
    found = services(request)
    pending = found.pending
    if pending.count >= found.settings.webhook_max_pending:  # the body is not even read
        return _rejected(request, OverloadedError(found.settings.webhook_max_pending), started)
    pending.count += 1
    try:
        return await _receive(request, found, started)
    finally:
        pending.count -= 1


async def _receive(request: Request, found: Services, started: float) -> Response:
    settings = found.settings
    event_type: str | None = None
    try:
        body = await read_limited_body(
            request,
            settings.webhook_max_bytes,
            settings.webhook_body_timeout_seconds,
            found.deadlines,
        )
        headers = dict(request.headers.items())  # one pass over the raw header list
        svix_id = found.verifier.verify(body, headers)
        try:
            envelope, storable = parse_envelope(body, svix_id, first_pass_only=True)
        except SecondPassNeeded:  # rare, and up to a few hundred ms for 1 MiB: not on the loop
            envelope, storable = await asyncio.to_thread(parse_envelope, body, svix_id)
        event_type = envelope.type
        entry = InboxEntry(
            svix_id=svix_id,
            event_type=envelope.type,
            clerk_user_id=envelope.clerk_user_id,
            payload=body.decode() if storable is None else storable,
            occurred_at_ms=envelope.occurred_at_ms,
        )
        try:
            # A waiting request has a deadline too. Past it the row may still be committed:
            # Clerk's retry then finds it a duplicate.
            with found.deadlines.within(found.inbox.wait_limit):
                event_id = await found.inbox.store(entry)
        except TimeoutError:
            raise InboxUnavailableError(
                "the event was not stored in time; deliver it again", svix_id=svix_id
            ) from None
    except WebhookError as error:
        return _rejected(request, error, started, event_type)

    outcome = "duplicate" if event_id is None else "accepted"
    (metrics.DUPLICATES if event_id is None else metrics.ACCEPTED).inc()
    latency = time.perf_counter() - started
    metrics.REQUEST_SECONDS.observe(latency)
    log.info(
        f"webhook.{outcome}",
        svix_id=svix_id,
        event_type=event_type,
        event_id=event_id,
        outcome=outcome,
        status=200,
        latency_ms=round(latency * 1000, 2),
    )
    return _json({"status": outcome, "id": svix_id})


def _rejected(
    request: Request, error: WebhookError, started: float, event_type: str | None = None
) -> Response:
    latency = time.perf_counter() - started
    metrics.REJECTED.labels(reason=error.reason.value).inc()
    metrics.REQUEST_SECONDS.observe(latency)
    # A 503 is ours to look at; a 4xx is the sender's.
    (log.warning if error.status >= 500 else log.info)(
        "webhook.rejected",
        svix_id=(error.svix_id or delivery_id(request.headers) or "")[:MAX_SVIX_ID_LENGTH],
        event_type=event_type,
        outcome="rejected",
        reason=error.reason.value,
        status=error.status,
        latency_ms=round(latency * 1000, 2),
    )
    response = _json({"error": error.reason.value, "detail": error.detail}, error.status)
    if isinstance(error, OverloadedError):
        response.headers["Retry-After"] = str(OverloadedError.RETRY_AFTER_SECONDS)
    elif error.reason is Reason.BODY_TIMEOUT:
        response.headers["Connection"] = "close"  # the rest of the body is never read
    return response


def _json(content: dict[str, Any], status: int = 200) -> Response:
    """Starlette's JSONResponse, rendered by orjson (a few µs less on every delivery)."""
    return Response(orjson.dumps(content), status, media_type="application/json")
