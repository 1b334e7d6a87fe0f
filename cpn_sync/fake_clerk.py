"""A fake of Clerk's Backend API (`GET /v1/users`, `GET /v1/users/{user_id}`) on loopback.

It answers as Clerk's published OpenAPI spec says (shared/clerk-openapi, checked by
tests/workers/clerk/test_spec_conformance.py): the bearer key, `limit` 1-500, `offset`,
`order_by` by `created_at` or `updated_at`, the `starting_after` cursor (created_at orders
only), the `user_id` filter, and Clerk's error bodies. Tests and benchmarks can inject 429s
with Retry-After (every Nth request, or a scripted run of statuses), add latency, and give it
Clerk's own budget of N requests per 10 s. Every request is recorded (path, query, status,
arrival time) so a test can count what reached the server.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cpn_sync.fake_clerk_queries import (
    Ordered,
    QueryError,
    count_users,
    select_users,
    sort_users,
)
from cpn_sync.fake_clerk_users import make_users

DEFAULT_KEY = "sk_test_fake_clerk_local_key"


@dataclass(frozen=True)
class Recorded:
    """One request as the fake saw it."""

    path: str
    query: tuple[tuple[str, str], ...]
    status: int
    at: float  # time.monotonic() on arrival


@dataclass
class FakeClerk:
    """The fake's state; tests change it while the server runs (every access takes the lock)."""

    secret_key: str = field(default=DEFAULT_KEY, repr=False)
    throttle_every: int = 0  # every Nth request answers 429 (0: never)
    retry_after: float = 1.0  # the Retry-After of injected 429s, in seconds
    latency_seconds: float = 0.0
    rate_limit: int | None = None  # Clerk's own budget: N requests per window, else 429
    rate_window_seconds: float = 10.0
    users: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    requests: list[Recorded] = field(default_factory=list, repr=False)
    _script: deque[int] = field(default_factory=deque, repr=False)
    _served: deque[float] = field(default_factory=deque, repr=False)
    _count: int = field(default=0, repr=False)
    _clock_ms: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _generation: int = field(default=0, repr=False)
    _orders: dict[tuple[str, bool], tuple[tuple[int, int], Ordered]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def seeded(cls, count: int, *, seed: int = 0, **options: Any) -> FakeClerk:
        fake = cls(**options)
        for user in make_users(count, seed=seed):
            fake.users[user["id"]] = user
        return fake

    def script(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order (429 and 503 with
        Retry-After, any other with Clerk's error body)."""
        with self._lock:
            self._script.extend(statuses)

    def add_user(self, user: dict[str, Any]) -> None:
        with self._lock:
            self.users[user["id"]] = user
            self._generation += 1

    def changed(self) -> None:
        """Say that `users` was changed directly (a time or membership that keeps its size):
        the orders the fake keeps are sorted again."""
        with self._lock:
            self._generation += 1

    def ordered_by(self, field_name: str, descending: bool) -> Ordered:
        """Every user in an order, sorted again only after a change (call with the lock)."""
        version = (self._generation, len(self.users))
        cached = self._orders.get((field_name, descending))
        if cached is None or cached[0] != version:
            cached = (version, sort_users(self.users, field_name, descending))
            self._orders[(field_name, descending)] = cached
        return cached[1]

    def update_user(self, user_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields of a user; its `updated_at` moves past every earlier one, as at Clerk."""
        with self._lock:
            user = self.users[user_id]
            user.update(changes)
            self._clock_ms = max(
                self._clock_ms + 1, int(time.time() * 1000), user["updated_at"] + 1
            )
            user["updated_at"] = self._clock_ms
            self._generation += 1
            return dict(user)

    def delete_user(self, user_id: str) -> None:
        with self._lock:
            del self.users[user_id]
            self._generation += 1

    def recorded(self) -> list[Recorded]:
        with self._lock:
            return list(self.requests)

    def _gate(self, request: Request) -> Response | None:
        """Key check, then injected and budget 429s and scripted failures; None: serve it."""
        now = time.monotonic()
        with self._lock:
            self._count += 1
            if request.headers.get("authorization") != f"Bearer {self.secret_key}":
                return _error(401, "authentication_invalid", "Invalid authentication")
            if self._script:
                status = self._script.popleft()
                if status == 429:
                    return self._throttled(self.retry_after)
                response = _error(status, "internal_clerk_error", "Something went wrong")
                if status == 503:  # unavailable for a while: says when to come back
                    response.headers["Retry-After"] = f"{self.retry_after:g}"
                return response
            if self.throttle_every and self._count % self.throttle_every == 0:
                return self._throttled(self.retry_after)
            if self.rate_limit is not None:
                while self._served and self._served[0] <= now - self.rate_window_seconds:
                    self._served.popleft()
                if len(self._served) >= self.rate_limit:
                    wait = self._served[0] + self.rate_window_seconds - now
                    return self._throttled(
                        math.ceil(wait) if self.rate_window_seconds >= 1 else wait
                    )
                self._served.append(now)
        return None

    def _throttled(self, seconds: float) -> Response:
        response = _error(429, "too_many_requests", "Too many requests")
        response.headers["Retry-After"] = f"{seconds:g}"
        return response

    def _record(self, request: Request, status: int, at: float) -> None:
        with self._lock:
            self.requests.append(
                Recorded(request.url.path, tuple(request.query_params.multi_items()), status, at)
            )


def _error(
    status: int, code: str, message: str, *, param: str | None = None, detail: str = ""
) -> Response:
    """Clerk's error body (`ClerkErrors`): errors with message, long_message, code, meta."""
    error: dict[str, Any] = {"message": message, "long_message": detail or message, "code": code}
    if param is not None:
        error["meta"] = {"param_name": param}
    body = {"errors": [error], "clerk_trace_id": uuid.uuid4().hex}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_app(fake: FakeClerk) -> Starlette:
    """The Starlette app over `fake`'s state."""

    async def serve(request: Request, answer: Any) -> Response:
        arrived = time.monotonic()
        if fake.latency_seconds:
            await asyncio.sleep(fake.latency_seconds)
        response = fake._gate(request) or answer()
        fake._record(request, response.status_code, arrived)
        return response

    async def list_users(request: Request) -> Response:
        def answer() -> Response:
            try:
                with fake._lock:
                    page = select_users(fake.users, request.query_params, fake.ordered_by)
            except QueryError as error:
                message = f"{error.param} {error.message}"
                return _error(422, error.code, message, param=error.param, detail=error.detail)
            return Response(orjson.dumps(page), media_type="application/json")

        return await serve(request, answer)

    async def count(request: Request) -> Response:
        def answer() -> Response:
            try:
                with fake._lock:
                    total = count_users(fake.users, request.query_params)
            except QueryError as error:
                message = f"{error.param} {error.message}"
                return _error(422, error.code, message, param=error.param, detail=error.detail)
            body = {"object": "total_count", "total_count": total}
            return Response(orjson.dumps(body), media_type="application/json")

        return await serve(request, answer)

    async def get_user(request: Request) -> Response:
        def answer() -> Response:
            with fake._lock:
                user = fake.users.get(request.path_params["user_id"])
                body = orjson.dumps(user) if user is not None else None
            if body is None:
                return _error(404, "resource_not_found", "not found", detail="Resource not found")
            return Response(body, media_type="application/json")

        return await serve(request, answer)

    return Starlette(
        routes=[
            Route("/v1/users", list_users, methods=["GET"]),
            Route("/v1/users/count", count, methods=["GET"]),
            Route("/v1/users/{user_id}", get_user, methods=["GET"]),
        ]
    )


@dataclass
class RunningFake:
    """A fake served on loopback; `api_url` is what CLERK_API_URL would be."""

    fake: FakeClerk
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def running(fake: FakeClerk, port: int = 0) -> Iterator[RunningFake]:
    """Serve `fake` on 127.0.0.1:`port` (0: a free one) in a thread while the block runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    # log_config=None: uvicorn must not reconfigure the process's logging (its handlers would
    # keep the stderr of the moment, and a test's captured output would miss later records).
    config = uvicorn.Config(
        create_app(fake),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-clerk", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the fake Clerk API did not start")
        time.sleep(0.01)
    handle = RunningFake(fake, sock.getsockname()[1], server, thread)
    try:
        yield handle
    finally:
        handle.stop()
        sock.close()


def serve_forever(users: int, port: int, *, onboarding: bool = True, **options: Any) -> None:
    """Serve `users` generated users on 127.0.0.1:`port` until interrupted (`cpn-sync dev
    --fake-clerk`, benchmarks); without `onboarding`, no user carries session-storage data."""
    fake = FakeClerk.seeded(users, **options)
    if not onboarding:
        for user in fake.users.values():
            user["unsafe_metadata"] = {}
    uvicorn.run(create_app(fake), host="127.0.0.1", port=port, log_config=None, log_level="warning")
