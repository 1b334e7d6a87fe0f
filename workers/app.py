"""The composition root of the worker and beat processes: the Celery app with every feature's
tasks, and the beat schedule. `cpn-sync worker`, `cpn-sync beat` and Flower
(`--app=workers.app:app`) load this module; features import `workers.core.celery_app`, never
this one.
"""

from __future__ import annotations

from typing import Any

from cpn_sync.settings import Settings, get_settings
from workers.canary import tasks as canary_tasks
from workers.clerk import tasks as clerk_tasks
from workers.core.celery_app import app
from workers.core.schedule import guarded_beat_schedule
from workers.cpn import tasks as cpn_tasks
from workers.inbox import retention, sweep
from workers.inbox import tasks as inbox_tasks
from workers.me_sync import tasks as me_sync_tasks
from workers.users import expiry

# Importing a feature's task module registers its tasks (scheduled jobs included) on `app`.
FEATURE_TASKS = (
    inbox_tasks, sweep, retention, expiry, cpn_tasks, canary_tasks, clerk_tasks, me_sync_tasks,
)  # fmt: skip


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's `beat_schedule`: every guarded job (maintenance, CPN, Clerk), and the canaries."""
    return guarded_beat_schedule(settings) | canary_tasks.beat_schedule(settings)


app.conf.beat_schedule = beat_schedule(get_settings())

__all__ = ["FEATURE_TASKS", "app", "beat_schedule"]
