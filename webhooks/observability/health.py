"""Operational endpoints: liveness, readiness (database and broker, ≤ 1 s each), metrics."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webhooks.observability import metrics
from webhooks.services import Services, services

CHECK_TIMEOUT = 1.0


async def healthz(_request: Request) -> Response:
    """Liveness: answers while the process runs, whatever its dependencies say."""
    return JSONResponse({"status": "ok"})


async def _database_answers(found: Services) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), found.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def _broker_answers(found: Services) -> bool:
    try:
        # The ping blocks (kombu is synchronous): a thread, abandoned if it overruns.
        await asyncio.wait_for(asyncio.to_thread(found.publisher.ping), CHECK_TIMEOUT)
    except Exception:
        return False
    return True


async def readyz(request: Request) -> Response:
    """Ready when the database and the broker both answer; a 503 names what failed."""
    found = services(request)
    database_ok, broker_ok = await asyncio.gather(_database_answers(found), _broker_answers(found))
    checks = {
        "database": "ok" if database_ok else "unavailable",
        "broker": "ok" if broker_ok else "unavailable",
    }
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        return JSONResponse({"status": "unavailable", "failed": failed, **checks}, 503)
    return JSONResponse({"status": "ready", **checks})


async def metrics_endpoint(request: Request) -> Response:
    found = services(request)
    await asyncio.gather(found.gauges.refresh_if_stale(), found.broker_gauges.refresh_if_stale())
    content, content_type = metrics.render()
    return Response(content, media_type=content_type)
