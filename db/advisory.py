"""PostgreSQL advisory locks for jobs that must not run twice at once (two beats, two hosts)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine, func, select


def lock_key(name: str) -> int:
    """A stable 63-bit key from a short ASCII name (at most 7 characters)."""
    raw = name.encode("ascii")
    if len(raw) > 7:
        raise ValueError(f"advisory lock names have at most 7 characters: {name!r}")
    return int.from_bytes(raw, "big")


@contextlib.contextmanager
def try_advisory_lock(engine: Engine, key: int) -> Iterator[bool]:
    """Hold a session-level advisory lock for the block, if no one else holds it.

    Yields False (and holds nothing) when another session has it. The lock lives on a
    connection of its own, so the block may commit as often as it likes; if the process dies,
    PostgreSQL releases the lock with the connection.
    """
    with engine.connect() as connection:
        acquired = bool(connection.execute(select(func.pg_try_advisory_lock(key))).scalar_one())
        connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                connection.execute(select(func.pg_advisory_unlock(key)))
                connection.commit()
