"""Operational endpoints: liveness, readiness (`readiness.py`), metrics (behind METRICS_TOKEN)."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webhooks.observability import metrics
from webhooks.services import services


async def healthz(_request: Request) -> Response:
    """Liveness: answers while the process runs, whatever its dependencies say."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the database answers (the web can store webhooks); the broker is reported."""
    answer = await services(request).readiness.answer()
    return JSONResponse(answer.body(), 200 if answer.ready else 503)


def _authorized(request: Request, token: str | None) -> bool:
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def metrics_endpoint(request: Request) -> Response:
    found = services(request)
    if not _authorized(request, found.settings.metrics_token):
        return JSONResponse(
            {"error": "unauthorized", "detail": "GET /metrics needs Authorization: Bearer"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    await asyncio.gather(found.gauges.refresh_if_stale(), found.broker_gauges.refresh_if_stale())
    content, content_type = metrics.render()
    return Response(content, media_type=content_type)
