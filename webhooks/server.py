"""Running the web process: uvicorn with $WEB_CONCURRENCY workers, metrics shared between them.

prometheus-client decides at import time whether it writes per-process files, so
PROMETHEUS_MULTIPROC_DIR is set here, before any worker starts, to a directory emptied first:
files left by an earlier run would add old counts to the new ones. This module must not import
prometheus-client (or anything that does) itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cpn_sync.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir() -> tuple[Path, bool]:
    """Use $PROMETHEUS_MULTIPROC_DIR (emptied) or a new temporary directory; export it.

    Answers the directory and whether it is ours to remove afterwards.
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        path = Path(configured)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path, False
    path = Path(tempfile.mkdtemp(prefix="cpn-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path, True


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
    }


def serve(settings: Settings, app: str = "webhooks.app:app") -> None:
    import uvicorn

    metrics_dir, temporary = prepare_metrics_dir()
    try:
        uvicorn.run(app, **uvicorn_options(settings))
    finally:
        if temporary:
            shutil.rmtree(metrics_dir, ignore_errors=True)
