"""No value of a row ever leaves the database in an error (DESIGN.md section 6).

PostgreSQL is made to refuse writes, through a trigger, with an error whose message and DETAIL
line quote the row's personal values, as a unique violation (`Key (email)=(...)`) or a bad
input (`invalid input syntax ...: "..."`) would; and the statements that carry those values
as bound parameters. Once with a SQLSTATE the service retries (serialization failure), once
with one it does not (check violation), on the paths a real `cpn-sync worker` runs (an event,
a CPN recompute) and on a command. Every output is searched for the values: the worker's whole
output (its log lines, Celery's retry and failure lines, which carry the task event's
exception text), `last_error`, the command's output.
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cpn_sync.cli import main
from cpn_sync.task_contract import CPN_RECOMPUTE_USER, PROCESS_EVENTS
from tests.worker_process import WorkerProcess
from tests.workers.conftest import running, wait_until
from tests.workers.cpn.conftest import add_interaction
from tests.workers.factories import email_address, event_row, store_event, user_data, user_event

pytestmark = pytest.mark.slow

EMAIL = "zerlina.quackenbush@privacy-probe.example"  # made unique per user: <clerk id>.EMAIL
FIRST_NAME = "Zerlinaprobe"
SHARE_MARKER = "share"  # the recompute's row carries an unguessable share token
PERSONAL = re.compile(r"zerlina|quackenbush|privacy-probe|/share/[A-Za-z0-9_-]{8,}", re.I)

RETRYABLE = "40001"  # serialization_failure: transient, retried
FAILING = "23514"  # check_violation: permanent

REFUSE = """
CREATE TABLE IF NOT EXISTS privacy_probe (sqlstate text NOT NULL);
CREATE OR REPLACE FUNCTION privacy_probe_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    code text := (SELECT sqlstate FROM privacy_probe LIMIT 1);
    quoted text := to_jsonb(NEW)::text;
BEGIN
    IF code IS NULL THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'row refused: "%"', quoted
        USING ERRCODE = code, DETAIL = 'Key (row)=(' || quoted || ') already exists.',
              CONSTRAINT = 'privacy_probe', COLUMN = 'probe';
END $$;
CREATE OR REPLACE TRIGGER privacy_probe BEFORE INSERT OR UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION privacy_probe_refuse();
CREATE OR REPLACE TRIGGER privacy_probe BEFORE INSERT OR UPDATE ON user_cpn_results
    FOR EACH ROW EXECUTE FUNCTION privacy_probe_refuse();
"""
UNDO = """
DROP TRIGGER IF EXISTS privacy_probe ON users;
DROP TRIGGER IF EXISTS privacy_probe ON user_cpn_results;
DROP FUNCTION IF EXISTS privacy_probe_refuse();
DROP TABLE IF EXISTS privacy_probe;
"""
QUICK_RETRIES = {"EVENT_MAX_RETRIES": "1", "EVENT_RETRY_BACKOFF_MAX_SECONDS": "1"}


def refuse_with(engine: Engine, sqlstate: str | None) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM privacy_probe"))
        if sqlstate is not None:
            connection.execute(text("INSERT INTO privacy_probe VALUES (:s)"), {"s": sqlstate})


@pytest.fixture
def refusing(engine: Engine) -> Iterator[Engine]:
    with engine.begin() as connection:
        connection.exec_driver_sql(REFUSE.replace("%", "%%"))  # no placeholders here
    try:
        yield engine
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(UNDO)


def leaks(output: str) -> list[str]:
    return sorted(set(PERSONAL.findall(output)))


def personal_user_event(clerk_id: str) -> dict[str, object]:
    data = user_data(clerk_id, first_name=FIRST_NAME, last_name="Quackenbush")
    data["email_addresses"] = [email_address("idn_probe", f"{clerk_id}.{EMAIL}")]
    data["primary_email_address_id"] = "idn_probe"
    return user_event("user.created", data)


def user_with_interaction(engine: Engine, clerk_id: str) -> int:
    with Session(engine) as session, session.begin():
        user_id: int = session.execute(
            text(
                "INSERT INTO users (clerk_id, email, first_name) VALUES (:c, :e, :f) RETURNING id"
            ),
            {"c": clerk_id, "e": f"{clerk_id}.{EMAIL}", "f": FIRST_NAME},
        ).scalar_one()
        add_interaction(session, user_id, cost="12.00", minutes=45, nuts=1)
    return user_id


class TaskEvents:
    """The task events a monitor such as Flower receives, collected in a thread."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> TaskEvents:
        self.connection = self.app.connection_for_read()
        self.receiver = self.app.events.Receiver(
            self.connection, handlers={"*": self.events.append}
        )
        self.thread = threading.Thread(
            target=self.receiver.capture, kwargs={"limit": None, "timeout": None}, daemon=True
        )
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.receiver.should_stop = True
        self.thread.join(10)
        self.connection.release()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("type") == kind]


def test_worker_errors_carry_no_row_values(refusing: Engine, web_publisher: Celery) -> None:
    engine = refusing
    retried = store_event(engine, personal_user_event("user_probe_retry"))
    failing = store_event(engine, personal_user_event("user_probe_fail"))
    cpn_retried = user_with_interaction(engine, "user_probe_cpn_retry")
    cpn_failing = user_with_interaction(engine, "user_probe_cpn_fail")
    with (
        running(WorkerProcess(concurrency=1, extra_env=QUICK_RETRIES)) as worker,
        TaskEvents(web_publisher) as monitor,
    ):
        web_publisher.control.enable_events()
        wait_until(lambda: bool(monitor.of("worker-heartbeat")), 30, "events enabled")
        refuse_with(engine, RETRYABLE)
        web_publisher.send_task(PROCESS_EVENTS, args=[[retried]], ignore_result=True)
        wait_until(lambda: event_row(engine, retried).status == "failed", 60, "retries spent")
        web_publisher.send_task(CPN_RECOMPUTE_USER, args=[cpn_retried], ignore_result=True)
        wait_until(lambda: worker.log.count("raised unexpected") == 1, 60, "cpn retries spent")

        refuse_with(engine, FAILING)
        web_publisher.send_task(PROCESS_EVENTS, args=[[failing]], ignore_result=True)
        wait_until(lambda: event_row(engine, failing).status == "failed", 60, "event failed")
        web_publisher.send_task(CPN_RECOMPUTE_USER, args=[cpn_failing], ignore_result=True)
        wait_until(lambda: worker.log.count("raised unexpected") == 2, 60, "cpn failed")
        wait_until(lambda: len(monitor.of("task-failed")) >= 2, 30, "failure events")
        refuse_with(engine, None)
        output = worker.log
    task_events = json.dumps(monitor.events)

    assert not leaks(output), leaks(output)
    assert monitor.of("task-retried")  # what Flower shows of a retry: its exception text
    assert not leaks(task_events), leaks(task_events)
    for event_id in (retried, failing):
        last_error = event_row(engine, event_id).last_error
        assert last_error
        assert not leaks(last_error), last_error
    assert "event.retry" in output  # the errors happened, and are described
    assert "SQLSTATE 40001" in output
    assert "SQLSTATE 23514" in output


@pytest.mark.parametrize("sqlstate", [RETRYABLE, FAILING])
def test_command_errors_carry_no_row_values(refusing: Engine, sqlstate: str) -> None:
    clerk_id = f"user_probe_cli_{sqlstate}"
    user_with_interaction(refusing, clerk_id)
    refuse_with(refusing, sqlstate)

    result = CliRunner().invoke(main, ["cpn", "recompute", "--user", clerk_id])

    error = result.exception
    shown = result.output + ("".join(traceback.format_exception(error)) if error else "")
    assert result.exit_code != 0
    assert not leaks(shown), shown
