"""The errors of the Clerk API client: one base class, facts that are never personal.

An error carries the HTTP status and the path template (`/users/{user_id}`), never a user's
data, a response body or the secret key, so that it can be logged, shown on a terminal or stored
on a job row as it is.
"""

from __future__ import annotations

from typing import Any

import orjson

KEY_VARIABLE = "CLERK_SECRET_KEY"


class ClerkAPIError(Exception):
    """Base of every error of this package."""

    def __init__(self, message: str, *, status: int | None = None, path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.path = path


class ClerkAuthError(ClerkAPIError):
    """Clerk refused the key (401 or 403): retrying cannot help; the operator must fix it."""

    def __init__(self, *, status: int, path: str) -> None:
        super().__init__(
            f"Clerk refused {KEY_VARIABLE} (HTTP {status} on GET {path}): "
            f"check that {KEY_VARIABLE} is this instance's secret key",
            status=status,
            path=path,
        )


class ClerkParameterError(ClerkAPIError):
    """Clerk refused a request parameter (400 or 422): a bug on our side, never retried."""

    def __init__(
        self, *, status: int, path: str, parameters: tuple[str, ...], codes: tuple[str, ...]
    ) -> None:
        named = ", ".join(parameters) or "unknown"
        super().__init__(
            f"Clerk refused the parameter {named} (HTTP {status} on GET {path}"
            + (f", {', '.join(codes)})" if codes else ")"),
            status=status,
            path=path,
        )
        self.parameters = parameters
        self.codes = codes


class ClerkUnavailableError(ClerkAPIError):
    """Clerk did not answer usefully (5xx, timeouts, connection errors) after every retry."""


class ClerkRateLimitedError(ClerkUnavailableError):
    """Clerk kept answering 429, or asked us to wait longer than the client may."""


class ClerkProtocolError(ClerkAPIError):
    """An answer that breaks the API's contract (not JSON, wrong shape, a cursor that stalls)."""


def refusal(status: int, content: bytes, path: str, sent: tuple[str, ...]) -> ClerkAPIError:
    """The error for a 4xx answer that retrying cannot fix; `sent`: the parameters sent.

    Of Clerk's error body only `meta.param_name` and `code` are kept: its messages may quote
    the values sent.
    """
    if status in (401, 403):
        return ClerkAuthError(status=status, path=path)
    if status in (400, 422):
        errors = _clerk_errors(content)
        named = tuple(
            dict.fromkeys(
                str(meta["param_name"])
                for error in errors
                if isinstance(meta := error.get("meta"), dict) and meta.get("param_name")
            )
        )
        codes = tuple(
            dict.fromkeys(str(e["code"]) for e in errors if isinstance(e.get("code"), str))
        )
        return ClerkParameterError(status=status, path=path, parameters=named or sent, codes=codes)
    return ClerkAPIError(f"Clerk answered {status} to GET {path}", status=status, path=path)


def _clerk_errors(content: bytes) -> list[dict[str, Any]]:
    """The `errors` of Clerk's error body (ClerkErrors), or none when the body is another."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return (
        [error for error in errors if isinstance(error, dict)] if isinstance(errors, list) else []
    )
