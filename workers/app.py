"""The Celery application, configured from the settings object alone."""

from __future__ import annotations

from celery import Celery

from cpn_sync.settings import get_settings


def create_celery() -> Celery:
    settings = get_settings()
    app = Celery("cpn_sync", broker=settings.broker_url, backend=settings.redis_url)
    app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)
    return app


app = create_celery()
