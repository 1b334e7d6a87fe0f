"""Running the web process: uvicorn with $WEB_CONCURRENCY workers, metrics shared between them.

PROMETHEUS_MULTIPROC_DIR is prepared here (`cpn_sync.metrics_dir`), before any worker starts.
This module must not import prometheus-client (or anything that does) itself.
"""

from __future__ import annotations

from typing import Any

from cpn_sync.metrics_dir import multiprocess_metrics
from cpn_sync.settings import Settings

# SIGTERM: uvicorn stops accepting, lets open requests finish for at most this long (a slow
# sender is cut at WEBHOOK_BODY_TIMEOUT_SECONDS anyway), then the lifespan writes what is queued
# (`webhooks.inbox.CLOSE_TIMEOUT_SECONDS`) and publishes it (`webhooks.publisher`'s). The
# orchestrator's grace (compose: `stop_grace_period` of web) must exceed the three together.
GRACEFUL_SHUTDOWN_SECONDS = 15


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The server options of the `web` process (the benchmark's baselines reuse them)."""
    return {
        "host": "0.0.0.0",  # noqa: S104 - a container's port is published on purpose
        "port": settings.port,
        "workers": settings.web_concurrency,
        "log_level": settings.log_level.lower(),
        "log_config": None,  # the app's structured logging, not uvicorn's formatters
        "access_log": False,  # one structured line per webhook instead
        "proxy_headers": True,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }


def serve(settings: Settings, app: str = "webhooks.app:app") -> None:
    import uvicorn

    with multiprocess_metrics():
        uvicorn.run(app, **uvicorn_options(settings))
