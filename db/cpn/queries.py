"""Read-side CPN queries: paging through user ids, the latest result, a result by share token."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, Row, Select, Table, select
from sqlalchemy.orm import Session

from db.models import User, UserCpnResult, UserInteractionChange

results = typing.cast(Table, UserCpnResult.__table__)
users = typing.cast(Table, User.__table__)
changes = typing.cast(Table, UserInteractionChange.__table__)


def _pages(engine: Engine, query: Select[int], key: Any, size: int) -> Iterator[list[int]]:
    """Keyset pages of ids in ascending order, each read in a short transaction of its own (no
    transaction stays open while the caller works on a page)."""
    after = 0
    while True:
        with engine.connect() as connection:
            page = list(
                connection.execute(query.where(key > after).order_by(key).limit(size)).scalars()
            )
        if not page:
            return
        yield page
        after = page[-1]


def user_id_pages(engine: Engine, size: int) -> Iterator[list[int]]:
    """Every user id exactly once, `size` at a time (the nightly fan-out)."""
    return _pages(engine, select(users.c.id), users.c.id, size)


def user_id_chunks(engine: Engine, size: int) -> Iterator[list[int]]:
    """Every user id exactly once, `size` at a time, from ONE query read through a server-side
    cursor: memory stays at one chunk, and the nightly fan-out publishes the chunks as fast as
    PostgreSQL streams them (no query and connection check-out per chunk). For callers that do
    little per chunk: the query's transaction stays open until the last one."""
    with engine.connect() as connection:
        result = connection.execution_options(yield_per=size).execute(
            select(users.c.id).order_by(users.c.id)
        )
        for chunk in result.scalars().partitions():
            yield list(chunk)


def dirty_user_id_pages(engine: Engine, size: int) -> Iterator[list[int]]:
    """Users whose interactions changed since a recompute last saw them."""
    return _pages(engine, select(changes.c.user_id), changes.c.user_id, size)


def user_id_for_clerk_id(session: Session, clerk_id: str) -> int | None:
    user_id: int | None = session.execute(
        select(users.c.id).where(users.c.clerk_id == clerk_id)
    ).scalar_one_or_none()
    return user_id


def latest_result(session: Session, user_id: int) -> Row[Any] | None:
    return session.execute(
        select(results).where(results.c.user_id == user_id).order_by(results.c.id.desc()).limit(1)
    ).one_or_none()


def result_by_share_token_query(token: str) -> Select[Any]:
    """The row a share link shows (for the web's async connection)."""
    return select(results).where(results.c.share_token == token)
