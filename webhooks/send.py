"""`cpn-sync send`: sign an event with the svix library and POST it, like `stripe trigger`.

Without options it targets the local `make run` service: http://localhost:$PORT/webhooks/clerk,
signed with CLERK_WEBHOOK_SECRET or the secret `make run` keeps in $DATA_DIR/webhook-secret.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from svix.webhooks import Webhook

from cpn_sync import dev_stack, local
from cpn_sync.clerk import subject_user_id
from cpn_sync.settings import get_settings
from db.engine import make_engine
from db.models import FINAL_EVENT_STATUSES, EventStatus
from webhooks.event_edits import EditError, apply_edit
from webhooks.samples import SAMPLE_TYPES, sample_event
from webhooks.send_wait import wait_for_outcome, what_was_written


def new_svix_id() -> str:
    return f"msg_{secrets.token_urlsafe(20)}"


def signed_headers(
    secret: str, body: bytes, *, svix_id: str | None = None, at: dt.datetime | None = None
) -> dict[str, str]:
    """The three Svix headers of a delivery of `body`, as Clerk would send them."""
    moment = at or dt.datetime.now(dt.UTC)
    delivery = svix_id or new_svix_id()
    signature = Webhook(secret).sign(delivery, moment, body.decode())
    return {
        "svix-id": delivery,
        "svix-timestamp": str(int(moment.timestamp())),
        "svix-signature": signature,
        "content-type": "application/json",
    }


def _default_url() -> str:
    """The running `make run`'s endpoint, else the one $PORT would serve."""
    settings = get_settings()
    stack = dev_stack.running_stack(settings.data_dir)
    if stack is not None and "PORT" not in os.environ:
        return stack.webhook_url
    return f"http://localhost:{settings.port}/webhooks/clerk"


def _default_secret() -> str:
    settings = get_settings()
    if settings.webhook_secrets:
        return settings.webhook_secrets[0]
    return local.webhook_secret(settings.data_dir)


def post(url: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=dict(headers), timeout=20.0)


@click.command()
@click.argument("event_type", required=False, type=click.Choice(SAMPLE_TYPES))
@click.option(
    "--file",
    "event_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send this JSON file's bytes as they are, instead of a sample.",
)
@click.option("--url", help="Endpoint (default: the local make run service).")
@click.option("--secret", help="whsec_ signing secret (default: the local one).")
@click.option("--user-id", help="Use this Clerk user id in the sample (e.g. a user sent before).")
@click.option("--onboarding", is_flag=True, help="user.created with onboarding data.")
@click.option(
    "--set",
    "edits",
    multiple=True,
    metavar="PATH=VALUE",
    help="Change one value before signing, e.g. data.first_name=Bob (repeatable; JSON or text).",
)
@click.option("--repeat", default=1, show_default=True, help="Deliver the same event N times.")
@click.option("--wait", is_flag=True, help="Follow the stored event until a worker applied it.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds --wait waits at most.")
def send(
    event_type: str | None,
    event_file: Path | None,
    url: str | None,
    secret: str | None,
    user_id: str | None,
    onboarding: bool,
    edits: tuple[str, ...],
    repeat: int,
    wait: bool,
    timeout: float,
) -> None:
    """Sign EVENT_TYPE's built-in sample (or --file) and POST it; print each answer, and with
    --wait what the workers made of it."""
    if (event_type is None) == (event_file is None):
        raise click.UsageError("give either an EVENT_TYPE or --file")
    body = _body(event_type, event_file, user_id, onboarding, edits)
    clerk_user_id, session_id = _ids(body)
    target = url or _default_url()
    headers = signed_headers(secret or _default_secret(), body)
    click.echo(f"POST {target} svix-id={headers['svix-id']} ({len(body)} bytes)")
    click.echo(
        f"clerk user: {clerk_user_id or '-'}" + (f"  session: {session_id}" if session_id else "")
    )
    failed = False
    for _ in range(repeat):
        try:
            response = post(target, body, headers)
        except httpx.HTTPError as error:
            raise click.ClickException(
                f"cannot reach {target} ({type(error).__name__}): is `make run` running?"
            ) from error
        click.echo(f"{response.status_code} {response.text}")
        failed = failed or not response.is_success
    if failed:
        raise SystemExit(1)
    if wait:
        _follow(headers["svix-id"], clerk_user_id, session_id, timeout)


def _body(
    event_type: str | None,
    event_file: Path | None,
    user_id: str | None,
    onboarding: bool,
    edits: tuple[str, ...],
) -> bytes:
    """The bytes to sign: a file's as they are (unless edited), else a fresh sample."""
    if event_file is not None and not edits:
        return event_file.read_bytes()
    try:
        event: Any = (
            orjson.loads(event_file.read_bytes())
            if event_file is not None
            else sample_event(str(event_type), user_id=user_id, onboarding=onboarding)
        )
        for edit in edits:
            apply_edit(event, edit)
    except (orjson.JSONDecodeError, EditError) as error:
        raise click.UsageError(str(error)) from None
    return orjson.dumps(event)


def _ids(body: bytes) -> tuple[str | None, str | None]:
    """The Clerk user and session the event names (for the developer's next command)."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        return None, None
    event_type, data = str(event.get("type", "")), event["data"]
    session = data.get("id") if event_type.startswith("session.") else None
    return subject_user_id(event_type, data), session if isinstance(session, str) else None


def _follow(
    svix_id: str, clerk_user_id: str | None, session_id: str | None, timeout: float
) -> None:
    engine = make_engine(get_settings().require_database_url())
    try:
        outcome = wait_for_outcome(engine, svix_id, timeout)
        if outcome.status not in FINAL_EVENT_STATUSES and outcome.status != EventStatus.WAITING:
            raise click.ClickException(
                f"still {outcome.status or 'not stored'} after {timeout:g} s: "
                "is a worker running (make run starts one)?"
            )
        click.echo(outcome.status + (f": {outcome.reason}" if outcome.reason else ""))
        for line in what_was_written(engine, clerk_user_id, session_id):
            click.echo(line)
    finally:
        engine.dispose()
    if outcome.status in (EventStatus.FAILED, EventStatus.WAITING):
        raise SystemExit(1)
