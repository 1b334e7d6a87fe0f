"""The Celery application object that every feature's tasks register on, configured from the
settings object alone. The composition root, `workers.app`, imports every feature's tasks and
adds the beat schedule; this module imports no feature.

Nothing may be lost or silently dropped: messages are acknowledged after the task returns and
re-queued when a worker process dies; each process takes one message at a time; results are
not stored; every countdown and time limit stays far below the Redis visibility timeout (set
in `cpn_sync.task_contract`, in its three places).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from cpn_sync import logs
from cpn_sync.error_tracking import start_error_tracking
from cpn_sync.settings import get_settings
from cpn_sync.task_contract import celery_config
from workers.core import task_metrics
from workers.core.engine import dispose_engine_after_fork
from workers.core.health import MAX_TICK_SECONDS

# Per-task lines ("Task ... received", "... succeeded in") cost more than a task here; the
# tasks log their own outcome with the event id instead.
CHATTY_CELERY_LOGGERS = ("celery.app.trace", "celery.worker.strategy")

SOFT_TIME_LIMIT = 60
HARD_TIME_LIMIT = 90


def worker_config() -> dict[str, Any]:
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,  # failures are recorded on the event row
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": SOFT_TIME_LIMIT,
        "task_time_limit": HARD_TIME_LIMIT,
        # A task whose broker connection is gone cannot be acknowledged: it will be delivered
        # again, so it stops instead of finishing twice.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_max_retries": None,  # keep reconnecting through a broker outage
        "worker_hijack_root_logger": False,
        "beat_max_loop_interval": MAX_TICK_SECONDS,  # beat's heartbeat (workers.core.health)
        "timezone": "UTC",
    }


class _NoDefaultBroker(Celery):
    """Celery falls back to `amqp://guest@localhost//` when no broker is configured; here a
    missing broker URL is a `SettingsError` at the first connection instead."""

    def connection_for_read(self, url: Any = None, **kwargs: Any) -> Any:
        if not (url or self.conf.broker_read_url):
            get_settings().require_broker_url()
        return super().connection_for_read(url, **kwargs)

    def connection_for_write(self, url: Any = None, **kwargs: Any) -> Any:
        if not (url or self.conf.broker_write_url):
            get_settings().require_broker_url()
        return super().connection_for_write(url, **kwargs)


def create_celery() -> Celery:
    start_error_tracking(get_settings())  # before the app: the integration hooks its tasks
    app = _NoDefaultBroker("cpn_sync")
    app.conf.update(celery_config(get_settings()))
    app.conf.update(worker_config())
    return app


@setup_logging.connect
def _structured_logging(**_: Any) -> None:
    """Keep the structlog JSON lines (Celery would install its own format otherwise)."""
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    for name in CHATTY_CELERY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


@worker_process_init.connect
def _fresh_database_connections(**_: Any) -> None:
    """Pooled connections must not cross fork(): each pool child opens its own."""
    dispose_engine_after_fork()


@worker_process_init.connect
def _freeze_what_the_child_inherited(**_: Any) -> None:
    """The modules and objects a pool child starts with live as long as it does: moved out of
    the collector's reach (`gc.freeze`), a collection no longer walks them all. Measured on a
    backfill of 500-user pages, each page's short-lived objects had set off collections that
    walked the whole inherited heap."""
    gc.freeze()


app = create_celery()
_ = task_metrics  # its signal handlers count every task this app runs
