"""The secret key and users' data never reach a log line, an error or a repr."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from cpn_sync import logs
from cpn_sync.fake_clerk import FakeClerk
from tests.workers.clerk.conftest import KEY, MakeClient
from workers.clerk.api import ClerkClient
from workers.clerk.errors import ClerkAPIError


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The service's logging at DEBUG, rendered into a buffer; restored afterwards (it is
    process-wide)."""
    saved_structlog: dict[str, Any] = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    logs.configure("DEBUG", "json")
    buffer = io.StringIO()
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=buffer))
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(buffer)
    root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    yield buffer
    structlog.configure(**saved_structlog)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_key_and_user_data_never_in_logs_errors_or_reprs(
    debug_logs: io.StringIO,
    make_client: MakeClient,
    fake: FakeClerk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.retry_after = 0.01
    client = make_client()
    fake.script(429, 500)
    pages = list(client.list_users())
    client.get_user("user_gone")
    texts = [repr(client), repr(client.config), str(client.config)]
    wrong_key = "sk_live_SECRETsecretSECRET42"
    refused, unavailable = make_client(secret_key=wrong_key), make_client(max_attempts=1)
    failures: list[tuple[ClerkClient, Callable[[], object]]] = [
        (refused, lambda: refused.get_user("user_x")),
        (unavailable, lambda: unavailable.get_user("user_x")),
        (client, lambda: next(client.list_users(starting_after="user_x"))),
    ]
    for failing, action in failures:
        if failing is unavailable:
            fake.script(503)
        with pytest.raises(ClerkAPIError) as raised:
            action()
        texts += [str(raised.value), repr(raised.value), repr(failing)]

    logged = debug_logs.getvalue() + caplog.text
    assert "clerk_api.throttled" in logged  # the log was captured
    assert "clerk_api.retry" in logged
    everything = "\n".join([*texts, logged])
    for secret in (KEY, wrong_key, KEY.removeprefix("sk_test_"), "SECRETsecret"):
        assert secret not in everything
    user = pages[0].users[0]
    personal = [user["first_name"], user["email_addresses"][0]["email_address"]]
    assert not [value for value in personal if value in logged]
