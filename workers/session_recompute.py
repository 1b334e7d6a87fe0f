"""Asking for a CPN recompute of one user, by task name (the CPN feature owns the task).

Used where no event transaction is at hand (the `cpn-sync sessions` commands). A broker that
cannot be reached is not an error: the CPN dirty scan finds every user whose interactions
changed since their latest result, so a request lost here is only a later recompute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cpn_sync.logs import get_logger

log = get_logger(__name__)

CPN_RECOMPUTE_USER = "cpn.recompute_user"  # args: [users.id]

Publish = Callable[[str, list[Any]], None]


def send_by_name(name: str, args: list[Any]) -> None:
    """Publish through the Celery app configured by `cpn_sync.celery_config` (no task code)."""
    from workers.app import app

    app.send_task(name, args=args, ignore_result=True)


@dataclass
class RecomputeRequests:
    """Sends one request per user; after the first broker failure it stops trying (each try
    would wait for the same unreachable broker) and counts what it did not send."""

    publish: Publish = send_by_name
    sent: int = 0
    unsent: int = 0

    def __call__(self, user_id: int) -> None:
        from kombu.exceptions import OperationalError

        if self.unsent:
            self.unsent += 1
            return
        try:
            self.publish(CPN_RECOMPUTE_USER, [user_id])
        except OperationalError as error:
            self.unsent += 1
            log.warning("cpn.recompute_not_requested", user_id=user_id, error=type(error).__name__)
            return
        self.sent += 1
