"""When to try a Clerk request again: Retry-After as Clerk sent it, else jittered backoff."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential, capped, with equal jitter: half fixed, half random, so never near zero.

    The random half keeps the clients that one outage stopped together from retrying together.
    """
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_after_seconds(value: str) -> float:
    """Seconds to wait from a Retry-After value (seconds or an HTTP date); 0 when unreadable."""
    value = value.strip()
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0
