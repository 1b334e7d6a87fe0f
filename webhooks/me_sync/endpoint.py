"""`POST /api/me/sync`: a signed-in browser (or the app's server) asks for its user to be in the
database now, optionally handing over its session-storage onboarding data (DESIGN.md section 10).

Order of checks: in-flight bound (503), token (401, nothing read or stored), rate limits (429),
body (413/408/400), tombstone (404). A known user without onboarding data is answered from one
read; anything else is stored in `me_sync_requests` first (durable before anything else, one row
per `(sub, sessionDataId)`), then `webhooks.sync_me` is enqueued and the call waits up to
SYNC_WAIT_SECONDS for the run: woken by the run's notification (`notifications`), it reads the
row back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from sqlalchemy import exc
from starlette.requests import Request
from starlette.responses import Response

from cpn_sync.logs import get_logger
from webhooks.body import read_limited_body
from webhooks.errors import Reason, RejectionError
from webhooks.me_sync import metrics
from webhooks.me_sync.answers import PENDING, answer_of, user_answer
from webhooks.me_sync.body import HandedOver, onboarding_of
from webhooks.me_sync.errors import SyncError, SyncReason
from webhooks.me_sync.lookups import LookupUnavailableError
from webhooks.me_sync.notifications import FALLBACK_SECONDS
from webhooks.me_sync.rows import (
    RunOutcome,
    StoredCall,
    forget_unknown_user,
    read_outcome,
    store_call,
)
from webhooks.services import Services, services

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 5


async def sync_me(request: Request) -> Response:
    started = time.perf_counter()
    found = services(request)
    me = found.me_sync
    try:
        if me.verifier is None:
            raise SyncError(SyncReason.NOT_CONFIGURED, "CLERK_JWT_KEY is not set")
        if me.pending.count >= found.settings.sync_max_pending:
            raise SyncError(
                SyncReason.OVERLOADED, "too many calls pending", retry_after=RETRY_AFTER_SECONDS
            )
        me.pending.count += 1
        try:
            status, content, outcome = await _sync(request, found)
        finally:
            me.pending.count -= 1
    except SyncError as error:
        return _rejected(error, started)
    metrics.ANSWERED.labels(outcome=outcome).inc()
    latency = time.perf_counter() - started
    metrics.REQUEST_SECONDS.observe(latency)
    log.info(
        "me_sync.answered", outcome=outcome, status=status, latency_ms=round(latency * 1000, 2)
    )
    return _json(content, status)


async def _sync(request: Request, found: Services) -> tuple[int, dict[str, Any], str]:
    me = found.me_sync
    assert me.verifier is not None
    token = me.verifier.verify(request.headers.get("authorization"))
    retry_after = me.limits.retry_after(token.user_id)
    if retry_after is not None:
        raise SyncError(SyncReason.RATE_LIMITED, "too many calls", retry_after=retry_after)
    settings = found.settings
    try:
        body = await read_limited_body(
            request, settings.sync_max_bytes, settings.webhook_body_timeout_seconds, found.deadlines
        )
    except RejectionError as error:
        reason = (
            SyncReason.TOO_LARGE if error.reason is Reason.TOO_LARGE else SyncReason.BODY_TIMEOUT
        )
        raise SyncError(reason, error.detail) from None
    handed_over = onboarding_of(body)
    try:
        known = await me.lookups.look_up(token.user_id)
        if known.deleted:
            raise SyncError(SyncReason.DELETED_USER, "this user was deleted")
        if handed_over is None and known.user_id is not None:
            return 200, user_answer(token.user_id, known.user_id, "none", []), "none"
        call = await _store(found, token.user_id, handed_over)
        run = await _enqueue_and_wait(found, call, settings.sync_wait_seconds)
        if run is not None and run.outcome == "unknown_user":
            await forget_unknown_user(found.engine, call.request_id)
    except (exc.SQLAlchemyError, OSError, LookupUnavailableError) as error:
        log.warning("me_sync.database_error", error=type(error).__name__)
        raise SyncError(
            SyncReason.UNAVAILABLE, "the database did not answer", retry_after=RETRY_AFTER_SECONDS
        ) from None
    if run is None:
        return 202, PENDING, "pending"
    status, content = answer_of(token.user_id, call.number, run)
    outcome = content["onboarding"]["status"] if status == 200 else "pending"
    return status, content, outcome


async def _store(found: Services, clerk_id: str, handed_over: HandedOver | None) -> StoredCall:
    key = None if handed_over is None else handed_over.key
    data = None if handed_over is None else handed_over.json
    try:
        return await store_call(found.engine, clerk_id, key, data)
    except exc.DataError:  # a \u0000 that JSONB cannot hold
        raise SyncError(
            SyncReason.BAD_BODY, "onboarding holds a value that cannot be stored"
        ) from None


async def _enqueue_and_wait(found: Services, call: StoredCall, seconds: float) -> RunOutcome | None:
    """The run that covered this call, or None when none did within `seconds`."""
    deadline = time.monotonic() + seconds
    with found.me_sync.notifications.watching(call.request_id) as woken:
        found.publisher.submit_sync(call.request_id)
        while True:
            remaining = deadline - time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(remaining, FALLBACK_SECONDS))):
                    await woken.wait()
            woken.clear()
            run = await read_outcome(found.engine, call.request_id)
            if run is None:
                raise SyncError(SyncReason.DELETED_USER, "this user was deleted")
            if run.applied >= call.number:
                return run
            if deadline - time.monotonic() <= 0:
                return None


def _rejected(error: SyncError, started: float) -> Response:
    latency = time.perf_counter() - started
    metrics.REJECTED.labels(reason=error.reason.value).inc()
    metrics.REQUEST_SECONDS.observe(latency)
    (log.warning if error.status >= 500 else log.info)(
        "me_sync.rejected",
        reason=error.reason.value,
        status=error.status,
        latency_ms=round(latency * 1000, 2),
    )
    response = _json({"error": error.reason.value, "detail": error.detail}, error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.reason is SyncReason.BODY_TIMEOUT:
        response.headers["Connection"] = "close"
    return response


def _json(content: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")
