"""The web's insert, refused by PostgreSQL with an error that quotes the row (DESIGN.md section
6): neither the answer nor any log line carries a value of the event."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine

from cpn_sync.settings import Settings, get_settings
from tests.webhooks.conftest import deliver, new_event, post, running_app

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def logging_to_the_session_stream() -> Iterator[None]:
    """These tests configure logging while `capfd` holds stderr; set up before `capfd`, this
    is torn down after it and points the logs at the session's stream again (later tests would
    otherwise write to a closed file)."""
    yield
    from cpn_sync import logs

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)


PERSONAL = re.compile(r"zerlina|quackenbush|privacy-probe", re.I)

REFUSE = """
CREATE OR REPLACE FUNCTION privacy_probe_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'row refused: "%"', NEW.payload::text
        USING ERRCODE = TG_ARGV[0], DETAIL = 'Key (payload)=(' || NEW.payload::text || ').';
END $$;
CREATE OR REPLACE TRIGGER privacy_probe BEFORE INSERT ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION privacy_probe_refuse('{sqlstate}');
"""
UNDO = """
DROP TRIGGER IF EXISTS privacy_probe ON webhook_events;
DROP FUNCTION IF EXISTS privacy_probe_refuse();
"""


@pytest.mark.parametrize("sqlstate", ["40001", "23514"], ids=["retryable", "failing"])
async def test_a_refused_insert_leaves_no_row_value_in_the_answer_or_the_logs(
    settings: Settings,
    clean_db: Engine,
    broker: redis.Redis,
    capfd: pytest.CaptureFixture[str],
    sqlstate: str,
) -> None:
    event = new_event("user.created")
    event["data"]["first_name"] = "Zerlina"
    event["data"]["last_name"] = "Quackenbush"
    event["data"]["email_addresses"][0]["email_address"] = "zerlina@privacy-probe.example"
    with clean_db.begin() as connection:
        sql = REFUSE.replace("{sqlstate}", sqlstate).replace("%", "%%")
        connection.exec_driver_sql(sql)
    try:
        async with running_app(settings) as client:
            response = await post(client, deliver(event))
    finally:
        with clean_db.begin() as connection:
            connection.exec_driver_sql(UNDO)
    output = capfd.readouterr()

    assert response.status_code == 503  # not stored: Clerk delivers it again
    assert not PERSONAL.findall(response.text)
    assert not PERSONAL.findall(output.out + output.err)
    assert "inbox.write_failed" in output.err


@pytest.mark.parametrize("logger", ["stdlib", "structlog"])
def test_a_logged_traceback_of_a_database_error_keeps_no_row_value(
    clean_db: Engine, capfd: pytest.CaptureFixture[str], logger: str
) -> None:
    """uvicorn's and Celery's tracebacks (the standard library) and the service's own
    `log.exception` lines: the frames stay, the messages that quote the row go."""
    from cpn_sync import logs

    logs.configure("INFO", "json")
    with clean_db.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO users (clerk_id, email) "
            "VALUES ('user_probe', 'zerlina@privacy-probe.example')"
        )
    try:
        with clean_db.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (clerk_id, email) "
                "VALUES ('user_probe_2', 'zerlina@privacy-probe.example')"
            )
    except Exception:
        if logger == "stdlib":
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        else:
            logs.get_logger("test").exception("request.error")
    output = capfd.readouterr().err

    assert "Traceback" in output
    assert "SQLSTATE 23505" in output
    assert not PERSONAL.findall(output), output
