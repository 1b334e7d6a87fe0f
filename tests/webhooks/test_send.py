"""`cpn-sync send`: signs a sample or a file and posts it to a running endpoint."""

from __future__ import annotations

import re

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import Engine

from cpn_sync.cli import main
from cpn_sync.local import free_port
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.services import SHARED
from tests.webhooks.conftest import ENDPOINT, WebServer, payload_of, stored
from webhooks.send import send

pytestmark = pytest.mark.slow


def run_send(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(send, list(args))
    return result.exit_code, result.output


def test_send_is_a_cpn_sync_subcommand() -> None:
    assert main.commands["send"] is send


def test_sample_is_accepted_and_varies_on_each_call(
    web_server: WebServer, clean_db: Engine, broker: redis.Redis
) -> None:
    url = web_server.url + ENDPOINT
    outputs = [run_send("user.created", "--url", url, "--secret", TEST_WEBHOOK_SECRET)]
    outputs.append(run_send("user.created", "--url", url))  # secret from CLERK_WEBHOOK_SECRET
    for code, output in outputs:
        assert code == 0, output
        assert re.search(r'^200 \{"status":"accepted","id":"msg_', output, re.MULTILINE)
    rows = stored(clean_db)
    assert len(rows) == 2
    assert rows[0].clerk_user_id != rows[1].clerk_user_id
    emails = [payload_of(row)["data"]["email_addresses"][0]["email_address"] for row in rows]
    assert emails[0] != emails[1]


def test_session_sample_for_a_given_user(
    web_server: WebServer, clean_db: Engine, broker: redis.Redis
) -> None:
    code, output = run_send(
        "session.created", "--url", web_server.url + ENDPOINT, "--user-id", "user_given"
    )
    assert code == 0, output
    [row] = stored(clean_db)
    assert (row.event_type, row.clerk_user_id) == ("session.created", "user_given")
    assert payload_of(row)["data"]["user"]["id"] == "user_given"


def test_file_is_sent_as_is_and_repeat_shows_the_duplicate(
    web_server: WebServer, clean_db: Engine, broker: redis.Redis
) -> None:
    path = SHARED / "clerk-payloads" / "user.created.clerk-docs-overview.json"
    code, output = run_send(
        "--file", str(path), "--url", web_server.url + ENDPOINT, "--repeat", "2"
    )
    assert code == 0, output
    assert '"status":"accepted"' in output
    assert '"status":"duplicate"' in output
    [row] = stored(clean_db)
    assert row.clerk_user_id == "user_29w83sxmDNGwOuEthce5gg56FcC"


def test_rejection_is_printed_and_exits_non_zero(web_server: WebServer, clean_db: Engine) -> None:
    code, output = run_send(
        "user.created", "--url", web_server.url + ENDPOINT, "--secret", "whsec_d3Jvbmc="
    )
    assert code == 1
    assert '401 {"error":"bad_signature"' in output
    assert stored(clean_db) == []


def test_unreachable_endpoint_says_so() -> None:
    code, output = run_send("user.created", "--url", f"http://127.0.0.1:{free_port()}/x")
    assert code == 1
    assert "cannot reach" in output


def test_needs_exactly_one_of_type_or_file() -> None:
    assert run_send()[0] == 2
    path = SHARED / "clerk-payloads" / "user.deleted.json"
    assert run_send("user.deleted", "--file", str(path))[0] == 2
