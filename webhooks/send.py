"""`cpn-sync send`: sign an event with the svix library and POST it, like `stripe trigger`.

Without options it targets the local `make run` service: http://localhost:$PORT/webhooks/clerk,
signed with CLERK_WEBHOOK_SECRET or the secret `make run` keeps in $DATA_DIR/webhook-secret.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from pathlib import Path

import click
import httpx
import orjson
from svix.webhooks import Webhook

from cpn_sync import local
from cpn_sync.settings import get_settings
from webhooks.samples import SAMPLE_TYPES, sample_event


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
    return f"http://localhost:{get_settings().port}/webhooks/clerk"


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
@click.option("--repeat", default=1, show_default=True, help="Deliver the same event N times.")
def send(
    event_type: str | None,
    event_file: Path | None,
    url: str | None,
    secret: str | None,
    user_id: str | None,
    onboarding: bool,
    repeat: int,
) -> None:
    """Sign EVENT_TYPE's built-in sample (or --file) and POST it; print each answer."""
    if (event_type is None) == (event_file is None):
        raise click.UsageError("give either an EVENT_TYPE or --file")
    if event_file is not None:
        body = event_file.read_bytes()
    else:
        assert event_type is not None
        body = orjson.dumps(sample_event(event_type, user_id=user_id, onboarding=onboarding))
    target = url or _default_url()
    headers = signed_headers(secret or _default_secret(), body)
    click.echo(f"POST {target} svix-id={headers['svix-id']} ({len(body)} bytes)")
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
