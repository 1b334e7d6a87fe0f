"""Reading a request body with a hard size limit, whatever `Content-Length` says or omits."""

from __future__ import annotations

from starlette.requests import Request

from webhooks.deadlines import Deadlines
from webhooks.errors import Reason, RejectionError


def _too_large(limit: int) -> RejectionError:
    return RejectionError(Reason.TOO_LARGE, f"body is larger than {limit} bytes")


async def read_limited_body(
    request: Request, limit: int, timeout: float, deadlines: Deadlines
) -> bytes:
    """The whole body, or `RejectionError`: 413 as soon as it passes `limit` bytes, 408 when it
    has not all arrived within `timeout` seconds.

    A declared length over the limit is refused before reading anything; a missing or lying one
    is caught by counting, so at most `limit` bytes plus one chunk are ever held in memory, and
    for at most `timeout` seconds.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        with deadlines.within(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise RejectionError(
            Reason.BODY_TIMEOUT, f"body not received within {timeout:g} seconds"
        ) from None
    return b"".join(chunks)
