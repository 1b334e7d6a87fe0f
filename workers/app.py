"""The Celery application, configured from the settings object alone."""

from __future__ import annotations

from celery import Celery

from cpn_sync.celery_config import celery_config
from cpn_sync.settings import get_settings


def create_celery() -> Celery:
    app = Celery("cpn_sync", include=["workers.cpn_tasks"])
    app.conf.update(celery_config(get_settings()))
    return app


app = create_celery()
