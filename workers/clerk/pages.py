"""One page ahead: the next page is fetched while the caller writes the current one.

The walk over Clerk's users is a chain of requests whose next parameters depend on the page
before (the cursor is its last id), so at most one request can usefully run ahead. One worker
thread runs it; closing the iterator early waits for that one request and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Params = TypeVar("Params")
Page = TypeVar("Page")


def walk(
    fetch: Callable[[Params], Page],
    first: Params,
    following: Callable[[Params, Page], Params | None],
    *,
    prefetch: bool = True,
) -> Generator[Page, None, None]:
    """Yield `fetch(first)`, then `fetch(following(params, page))` until `following` says None.

    With `prefetch`, the request for the next page starts before the current page is yielded.
    """
    if not prefetch:
        params = first  # may be None: the first page of a walk has no cursor
        while True:
            page = fetch(params)
            yield page
            after = following(params, page)
            if after is None:
                return
            params = after

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="clerk-prefetch") as pool:
        pending: Future[Page] | None = pool.submit(fetch, first)
        current = first
        try:
            while pending is not None:
                page = pending.result()
                after = following(current, page)
                pending = pool.submit(fetch, after) if after is not None else None
                if after is not None:
                    current = after
                yield page
        finally:
            if pending is not None:
                pending.cancel()
