"""`cpn-sync cpn ...`: recompute CPN results and show a user's latest one."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cpn_sync.settings import SettingsError, get_settings
from cpn_sync.task_contract import CPN_RECOMPUTE_ALL, CPN_REVOKE_SHARE
from db.cpn.queries import latest_result, user_id_for_clerk_id, user_id_pages, users
from db.cpn.recompute import CpnFiguresOutOfRangeError
from workers.core.commands import command_engine
from workers.cpn.jobs import CpnOptions, recompute_chunk, revoke_share_links

# The Celery app (`workers.core.celery_app`) and what sends through it are imported where they
# are used: loading it imports prometheus-client, which `cpn-sync worker` must configure first.


def _user_id(engine: Engine, clerk_id: str) -> int:
    with Session(engine) as session:
        user_id = user_id_for_clerk_id(session, clerk_id)
    if user_id is None:
        raise click.ClickException(f"no user with Clerk id {clerk_id}")
    return user_id


@click.group()
def cpn() -> None:
    """CPN (cost per nut) results."""


@cpn.command()
@click.option("--user", "clerk_id", metavar="CLERK_ID", help="Recompute this user only.")
@click.option("--all", "everyone", is_flag=True, help="Recompute every user, chunk by chunk.")
@click.option("--enqueue", is_flag=True, help="Hand the work to the workers (queue cpn).")
def recompute(clerk_id: str | None, everyone: bool, enqueue: bool) -> None:
    """Recompute results now (a progress bar on a terminal), or --enqueue them."""
    if (clerk_id is None) == (not everyone):
        raise click.UsageError("give exactly one of --user CLERK_ID or --all")
    with command_engine() as engine:
        if clerk_id is not None:
            _recompute_user(engine, _user_id(engine, clerk_id), enqueue)
        else:
            _recompute_everyone(engine, enqueue)


def _recompute_user(engine: Engine, user_id: int, enqueue: bool) -> None:
    settings = get_settings()
    if enqueue:
        from workers.cpn.requests import request_recompute

        try:
            queued = request_recompute(user_id)
        except SettingsError as error:
            raise click.ClickException(str(error)) from error
        click.echo("recompute queued" if queued else "a recompute is already queued")
        click.echo(
            f"a worker runs it within {settings.cpn_coalesce_seconds:g} s (CPN_COALESCE_SECONDS); "
            "follow it with `cpn-sync cpn show CLERK_ID` or the worker log (cpn.chunk_recomputed)"
        )
        return
    outcome = recompute_chunk(engine, [user_id], CpnOptions.from_settings(settings))
    if outcome.out_of_range:
        raise click.ClickException(str(CpnFiguresOutOfRangeError(outcome.out_of_range)))
    click.echo("new result written" if outcome.written else "figures unchanged, no new result")


def _recompute_everyone(engine: Engine, enqueue: bool) -> None:
    if enqueue:
        from workers.core.celery_app import app

        app.send_task(CPN_RECOMPUTE_ALL, ignore_result=True)
        click.echo("full recompute queued")
        click.echo(
            "follow it: the worker log (cpn.job_done job=recompute_all, then "
            "cpn.chunk_recomputed), the worker metrics "
            'cpn_worker_tasks_total{task="cpn.recompute_chunk"}, or Flower '
            "(cpn-sync dev --with flower)"
        )
        return
    options = CpnOptions.from_settings(get_settings())
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(users)).scalar_one()
    written: list[int] = []
    out_of_range: list[int] = []
    with click.progressbar(length=total, label="Recomputing CPN results") as bar:
        for page in user_id_pages(engine, options.chunk_size):
            outcome = recompute_chunk(engine, page, options)
            written += outcome.written
            out_of_range += outcome.out_of_range
            bar.update(len(page))
    click.echo(f"{total} users, {len(written)} new results")
    if out_of_range:
        raise click.ClickException(str(CpnFiguresOutOfRangeError(out_of_range)))


@cpn.command("revoke-share")
@click.argument("clerk_id")
@click.option("--enqueue", is_flag=True, help="Hand the work to the workers (queue cpn).")
def revoke_share(clerk_id: str, enqueue: bool) -> None:
    """Revoke every share link of a user: each result gets a new token, the old links 404."""
    with command_engine() as engine:
        user_id = _user_id(engine, clerk_id)
        if enqueue:
            from workers.core.celery_app import app

            app.send_task(CPN_REVOKE_SHARE, args=[user_id], ignore_result=True)
            click.echo("share revocation queued")
            return
        rotated = revoke_share_links(engine, user_id, get_settings().public_base_url)
    click.echo(f"share links revoked: {rotated} results have a new link")


@cpn.command()
@click.argument("clerk_id")
def show(clerk_id: str) -> None:
    """The latest result of a user, with its recommendations."""
    with command_engine() as engine:
        user_id = _user_id(engine, clerk_id)
        with Session(engine) as session:
            row = latest_result(session, user_id)
    if row is None:
        raise click.ClickException("no CPN result yet for this user")
    click.echo(_describe(row))


def _describe(row: Any) -> str:
    def shown(value: Any) -> str:
        return "-" if value is None else str(value)

    period = f"{shown(row.calculation_period_start)} to {shown(row.calculation_period_end)}"
    lines = [
        f"result {row.id}, calculated {row.calculated_at:%Y-%m-%d %H:%M:%S %Z}",
        f"  interactions            {shown(row.total_interactions)}",
        f"  total cost              {shown(row.total_cost)}",
        f"  total hours             {shown(row.total_time_hours)}",
        f"  total nuts              {shown(row.total_nuts)}",
        f"  average cost per nut    {shown(row.average_cost_per_nut)}",
        f"  average cost per hour   {shown(row.average_cost_per_hour)}",
        f"  average nuts per hour   {shown(row.average_nuts_per_hour)}",
        f"  efficiency score        {shown(row.overall_efficiency_score)}",
        f"  period                  {period}",
        f"  share link              {shown(row.shareable_graphic_url)}",
        "recommendations:",
    ]
    advice = row.recommendations or []
    lines += [f"  - {item['message']} ({item['code']})" for item in advice] or ["  (none)"]
    return "\n".join(lines)
