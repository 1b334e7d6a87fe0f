"""A thin client of Clerk's Backend API: the users, read page by page, within Clerk's limits.

Why httpx and not Clerk's SDK (`clerk-backend-api` 7.0.0, measured on this 2-core machine):
- it has no `starting_after`, so it cannot walk users by cursor at all (offset only);
- it retries 5xx only: a 429 is raised as an error, and nothing shares a budget between calls;
- it parses every user into pydantic models: a page of 500 users (760 KB) from a fake Clerk on
  loopback took 47-71 ms through `users.list` against 10-17 ms with httpx and orjson (this
  client: 9 ms); parsing alone 25-30 ms against 5 ms, and turning its models back into the
  dicts the upsert takes cost 57 ms more;
- its own limit and retry behaviour (clerk/clerk-sdk-python#166: limit=501 gave 10 users).
Here every request goes through one path that spends a token of the shared budget, honours
429's `Retry-After`, retries 5xx and network errors with jittered exponential backoff a bounded
number of times, counts the status in `cpn_clerk_api_requests_total`, and raises only the
errors of `workers.clerk.errors`. The secret key lives in the client's headers and nowhere
else: not in the config's repr, an error or a log line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import httpx
import orjson
from prometheus_client import Counter

from cpn_sync import unstorable
from cpn_sync.logs import get_logger
from workers.clerk import pages
from workers.clerk.config import ClerkConfig
from workers.clerk.errors import (
    ClerkProtocolError,
    ClerkRateLimitedError,
    ClerkUnavailableError,
    refusal,
)
from workers.clerk.ratelimit import TokenBucket
from workers.clerk.retries import backoff_delay, retry_after_seconds

log = get_logger(__name__)

MAX_PAGE_SIZE: Final = 500  # Clerk's bound for `limit`; above it Clerk answers 422
USERS: Final = "/users"
USER: Final = "/users/{user_id}"
COUNT: Final = "/users/count"
# Our clock starts a window when a request leaves, Clerk's when it arrives: arrival times
# spread by network jitter, so a token comes back a little after the window.
WINDOW_MARGIN_SECONDS: Final = 0.05

REQUESTS = Counter(
    "cpn_clerk_api_requests",
    "Requests to Clerk's Backend API by HTTP status (`error`: no answer, a timeout).",
    ["status"],
)

User = dict[str, Any]


@dataclass(frozen=True)
class UserPage:
    """One page of users as Clerk sent them.

    `cursor`: in the created_at walk, the id to resume after (the page's last, or the cursor
    it was asked with when empty); None in the updated_at walk, which resumes from a watermark.
    """

    users: list[User]
    cursor: str | None


class ClerkClient:
    """One client per process or job: its connection pool and budget are shared by its calls."""

    def __init__(
        self,
        config: ClerkConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.limiter = TokenBucket(
            config.requests_per_window, config.rate_window_seconds + WINDOW_MARGIN_SECONDS
        )
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=config.api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {config.secret_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(
                config.timeout_seconds, connect=min(10.0, config.timeout_seconds)
            ),
        )

    def __repr__(self) -> str:
        return f"ClerkClient(api_url={self.config.api_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ClerkClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def get_user(self, user_id: str) -> User | None:
        """The user as Clerk has it now, or None when Clerk answers 404 (deleted or unknown)."""
        if not user_id or "/" in user_id:
            raise ValueError("a Clerk user id is a non-empty string without '/'")
        body = self._get(f"/users/{quote(user_id, safe='')}", USER, {}, not_found_ok=True)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise ClerkProtocolError("a user that is not a JSON object", path=USER)
        return body

    def count_users(self) -> int:
        """How many users the instance has (`GET /users/count`): a progress bar's length."""
        body = self._get(COUNT, COUNT, {})
        total = body.get("total_count") if isinstance(body, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise ClerkProtocolError("a count that is not a whole number", path=COUNT)
        return total

    def list_users(
        self,
        *,
        starting_after: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        prefetch: bool = True,
    ) -> Generator[UserPage, None, None]:
        """Every user, oldest first, a page at a time: `created_at` order and the cursor.

        Record each page's `cursor` after writing it; pass it back as `starting_after` to
        resume. New users are created last in this order, so a walk also sees users that sign
        up while it runs. The next page is fetched while the caller handles this one; `close()`
        the generator to stop early (it waits for that one request).
        """
        _check_page_size(page_size)

        def fetch(cursor: str | None) -> UserPage:
            params: dict[str, str | int] = {"limit": page_size, "order_by": "created_at"}
            if cursor is not None:
                params["starting_after"] = cursor
            users = self._get_users(params, page_size)
            return UserPage(users, _last_id(users) if users else cursor)

        def following(cursor: str | None, page: UserPage) -> str | None:
            if len(page.users) < page_size:
                return None
            if page.cursor == cursor:
                raise ClerkProtocolError("the cursor did not advance", path=USERS)
            return page.cursor

        yield from pages.walk(fetch, starting_after, following, prefetch=prefetch)

    def list_users_by_updated(
        self, *, updated_since_ms: int, page_size: int = MAX_PAGE_SIZE, prefetch: bool = True
    ) -> Generator[UserPage, None, None]:
        """Users updated at or after `updated_since_ms` (epoch ms), most recently updated first.

        Clerk can order by `updated_at` but not filter by it, and cursors need `created_at`
        order: this pages `order_by=-updated_at` by offset and stops at the first older user.
        A user updated while the walk runs may appear twice (the upsert is idempotent). Pages
        have no cursor (None): this walk resumes from its watermark.
        """
        _check_page_size(page_size)

        def fetch(offset: int) -> tuple[UserPage, bool]:
            params: dict[str, str | int] = {
                "limit": page_size,
                "offset": offset,
                "order_by": "-updated_at",
            }
            users = self._get_users(params, page_size)
            recent = [user for user in users if _updated_at(user) >= updated_since_ms]
            # Only a full page of recent users can be followed by more recent users.
            more = len(users) == page_size and len(recent) == len(users)
            return UserPage(recent, None), more

        def following(offset: int, fetched: tuple[UserPage, bool]) -> int | None:
            return offset + page_size if fetched[1] else None

        for page, _more in pages.walk(fetch, 0, following, prefetch=prefetch):
            yield page

    def _get_users(self, params: dict[str, str | int], page_size: int) -> list[User]:
        body = self._get(USERS, USERS, params)
        if not isinstance(body, list) or not all(isinstance(user, dict) for user in body):
            raise ClerkProtocolError("a users page that is not a list of objects", path=USERS)
        if len(body) > page_size:
            raise ClerkProtocolError("a users page longer than its limit", path=USERS)
        return body

    def _get(
        self, url: str, template: str, params: dict[str, str | int], *, not_found_ok: bool = False
    ) -> Any:
        """One GET with the budget, 429 waits and bounded retries; the parsed JSON body."""
        config = self.config
        failures = throttled = 0
        while True:
            try:
                with self.limiter.request():
                    response = self._http.get(url, params=params)
            except httpx.TransportError as exc:
                REQUESTS.labels(status="error").inc()
                failures += 1
                cause = type(exc).__name__
                if failures >= config.max_attempts:
                    raise ClerkUnavailableError(
                        f"Clerk did not answer GET {template} ({cause}) after {failures} attempts",
                        path=template,
                    ) from None
                self._back_off(template, failures, cause)
                continue
            status = response.status_code
            REQUESTS.labels(status=str(status)).inc()
            if status == 200:
                return _parse(response, template)
            if status == 404 and not_found_ok:
                return None
            if status == 429:
                throttled += 1
                wait = retry_after_seconds(response.headers.get("Retry-After", ""))
                if throttled > config.max_throttled or wait > config.max_retry_after_seconds:
                    raise ClerkRateLimitedError(
                        f"Clerk kept answering 429 to GET {template} ({throttled} times, "
                        f"Retry-After {wait:g} s)",
                        status=429,
                        path=template,
                    )
                wait = (
                    wait
                    if wait > 0
                    else backoff_delay(
                        throttled, config.backoff_base_seconds, config.backoff_max_seconds
                    )
                )
                log.warning("clerk_api.throttled", path=template, retry_after=wait)
                self.limiter.pause(wait)
                continue
            if status >= 500:
                failures += 1
                # A 503 may say when to come back: never sooner than that, nor longer than we may.
                after = retry_after_seconds(response.headers.get("Retry-After", ""))
                if failures >= config.max_attempts or after > config.max_retry_after_seconds:
                    raise ClerkUnavailableError(
                        f"Clerk answered {status} to GET {template} {failures} times",
                        status=status,
                        path=template,
                    )
                self._back_off(template, failures, str(status), at_least=after)
                continue
            raise refusal(status, response.content, template, tuple(params))

    def _back_off(self, template: str, failures: int, cause: str, at_least: float = 0.0) -> None:
        config = self.config
        delay = backoff_delay(failures, config.backoff_base_seconds, config.backoff_max_seconds)
        delay = max(delay, at_least)
        log.warning("clerk_api.retry", path=template, cause=cause, attempt=failures, delay=delay)
        self._sleep(delay)


def _check_page_size(page_size: int) -> None:
    # Clerk refuses a limit over 500; an SDK once sent 501 and silently got 10 users.
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")


# A `\u0000` or a UTF-16 surrogate escape: JSON orjson parses but PostgreSQL cannot store.
_MAY_BE_UNSTORABLE = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]")


def _parse(response: httpx.Response, template: str) -> Any:
    """The JSON body. Users come as they can be stored: a value PostgreSQL or orjson cannot
    hold (a `\u0000` in a name, a huge number or deep nesting in `unsafe_metadata`) is
    replaced and recorded in the user's `cpn_sync_unstorable`, as the web does for an event
    (`cpn_sync.unstorable`): one user's browser-written metadata never stops a walk."""
    content = response.content
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        try:
            body = unstorable.tolerant_loads(content.decode())
        except ValueError:  # UnicodeDecodeError included
            raise ClerkProtocolError(
                f"Clerk's answer to GET {template} is not JSON",
                status=response.status_code,
                path=template,
            ) from None
        return _storable_users(body)
    return _storable_users(body) if _MAY_BE_UNSTORABLE.search(content) else body


def _storable_users(body: Any) -> Any:
    """A user, or a list of users, each as `make_storable` leaves an event's `data`."""
    if isinstance(body, list):
        return [_storable_users(user) for user in body]
    if not isinstance(body, dict):
        return body
    envelope, problems = unstorable.make_storable({"data": body})
    user = envelope["data"]
    if problems:
        user[unstorable.UNSTORABLE_KEY] = problems
    return user


def _last_id(users: list[User]) -> str:
    user_id = users[-1].get("id")
    if not isinstance(user_id, str) or not user_id:
        raise ClerkProtocolError("a user without an id", path=USERS)
    return user_id


def _updated_at(user: User) -> int:
    value = user.get("updated_at")
    if not isinstance(value, int):
        raise ClerkProtocolError("a user without updated_at", path=USERS)
    return value
