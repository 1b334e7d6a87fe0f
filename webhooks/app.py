"""The Starlette application that the `web` process serves (`webhooks.app:app`).

Settings are read when the application starts (the lifespan), not when it is imported, so that
tests and the command line choose the environment first.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from cpn_sync import logs
from cpn_sync.error_tracking import start_error_tracking
from cpn_sync.settings import Settings, get_settings
from webhooks.clerk import receive_clerk_webhook
from webhooks.me_sync.cors import ApiCORS
from webhooks.me_sync.endpoint import sync_me
from webhooks.observability.health import healthz, metrics_endpoint, readyz
from webhooks.services import Services
from webhooks.share import page as share

log = logs.get_logger(__name__)


def create_app(
    settings: Settings | None = None, *, gauge_max_age: float = 5.0, ready_max_age: float = 1.0
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        chosen = settings or get_settings()
        logs.configure(chosen.log_level, chosen.log_format)  # uvicorn's workers are new processes
        start_error_tracking(chosen)
        app.state.services = await Services.open(
            chosen, gauge_max_age=gauge_max_age, ready_max_age=ready_max_age
        )
        app.state.db_engine = app.state.services.engine  # the share pages read through it
        # What start-up allocated lives as long as the process: out of the collector's sight,
        # a full collection no longer walks it in the middle of a request (the p99 tail).
        gc.collect()
        gc.freeze()
        log.info("web.started")
        try:
            yield
        finally:
            await app.state.services.close()
            log.info("web.stopped")

    return Starlette(
        routes=[
            Route("/webhooks/clerk", receive_clerk_webhook, methods=["POST"]),
            Route("/api/me/sync", sync_me, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *share.routes,
        ],
        middleware=[Middleware(ApiCORS)],
        lifespan=lifespan,
    )


app = create_app()
