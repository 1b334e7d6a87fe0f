"""CPN recompute requests from the `cpn-sync sessions` commands, after their commits.

They go through the CPN feature's `request_recompute` (coalesced per user). A broker or Redis
that cannot be reached is not an error here: the CPN dirty scan finds every user whose
interactions changed since their latest result, so a request lost here is only a later
recompute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cpn_sync.logs import get_logger

log = get_logger(__name__)


def _request_recompute(user_id: int) -> object:
    from workers.cpn.tasks import request_recompute

    return request_recompute(user_id)


@dataclass
class RecomputeRequests:
    """One request per user; after the first failure to reach the broker it stops trying (each
    try would wait for the same unreachable server) and counts what it did not send."""

    request: Callable[[int], object] = _request_recompute
    sent: int = 0
    unsent: int = 0

    def __call__(self, user_id: int) -> None:
        from kombu.exceptions import OperationalError
        from redis.exceptions import ConnectionError, TimeoutError

        if self.unsent:
            self.unsent += 1
            return
        try:
            self.request(user_id)
        except (OperationalError, ConnectionError, TimeoutError) as error:
            self.unsent += 1
            log.warning("cpn.recompute_not_requested", user_id=user_id, error=type(error).__name__)
            return
        self.sent += 1
