"""`cpn-sync`: one command line for every operator task. Subcommand groups live beside the code
they drive and are registered here."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from cpn_sync import dev_stack, logs
from cpn_sync.backup.dump import backup_command
from cpn_sync.backup.restore import restore_command
from cpn_sync.command_errors import OneLineErrors, database_location, server_location
from cpn_sync.local import LocalServiceError
from cpn_sync.settings import get_settings
from webhooks.send import send
from workers.clerk.cli import clerk
from workers.clerk.errors import ClerkAPIError
from workers.cpn.cli import cpn
from workers.inbox.cli import events
from workers.onboarding.cli import onboarding, sessions


class _Commands(OneLineErrors):
    # Errors whose message is written to be shown as it is (no secret, no personal value).
    safe_errors = (ClerkAPIError, LocalServiceError)


@click.group(cls=_Commands)
@click.version_option(package_name="cpn-sync", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Say which database and Redis are used.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Keep the CPN app's PostgreSQL database in step with Clerk."""
    settings = get_settings()
    if ctx.invoked_subcommand != "dev":  # dev starts the stack the others find
        sources = dev_stack.fill_environment(settings.data_dir, os.environ)
        get_settings.cache_clear()
        settings = get_settings()
        if verbose:
            click.echo(
                f"database: {database_location(settings.database_url)} "
                f"(from {sources['DATABASE_URL']})",
                err=True,
            )
            click.echo(
                f"redis: {server_location(settings.redis_url)} (from {sources['REDIS_URL']})",
                err=True,
            )
    logs.configure(settings.log_level, settings.log_format)


main.add_command(backup_command)
main.add_command(restore_command)
main.add_command(onboarding)
main.add_command(sessions)


@main.command()
def migrate() -> None:
    """Bring the database to the newest migration (safe from several hosts at once)."""
    from db.migrate import upgrade

    revision = upgrade(get_settings().require_database_url())
    click.echo(f"database at revision {revision}")


@main.command()
def web() -> None:
    """Serve HTTP on $PORT with $WEB_CONCURRENCY uvicorn workers."""
    from webhooks.server import serve

    get_settings().require_broker_url()  # it publishes every stored event's task
    serve(get_settings())


@main.command()
@click.option(
    "--healthcheck",
    is_flag=True,
    help="Exit 0 when this host's worker answers a ping through the broker, else 1.",
)
def worker(healthcheck: bool) -> None:
    """A Celery worker for $WORKER_QUEUES with $WORKER_CONCURRENCY processes; its task metrics
    on $WORKER_METRICS_PORT."""
    from cpn_sync.metrics_dir import multiprocess_metrics

    settings = get_settings()
    settings.require_broker_url()
    if healthcheck:
        from workers.app import app
        from workers.core.health import worker_answers

        if not worker_answers(app):
            raise click.ClickException("the worker of this host does not answer a ping")
        click.echo("worker answers")
        return
    # Before prometheus-client is imported (by workers.app): the pool's children inherit it.
    with multiprocess_metrics(private=True, prefix="cpn-worker-metrics-"):
        from workers.app import app

        app.worker_main(
            [
                "worker",
                f"--loglevel={settings.log_level}",
                f"--concurrency={settings.worker_concurrency}",
                f"--queues={settings.worker_queues}",
            ]
        )


@main.command()
@click.option(
    "--healthcheck",
    is_flag=True,
    help="Exit 0 when the beat of this $DATA_DIR has ticked within the last 5 minutes, else 1.",
)
def beat(healthcheck: bool) -> None:
    """The Celery beat scheduler (run exactly one; scheduled jobs also take an advisory lock)."""
    from workers.core.health import beat_is_alive

    settings = get_settings()
    if healthcheck:
        if not beat_is_alive(settings.data_dir):
            raise click.ClickException(f"beat has not ticked recently in {settings.data_dir}")
        click.echo("beat ticks")
        return
    from workers.app import app

    settings.require_broker_url()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.start(
        [
            "beat",
            f"--loglevel={settings.log_level}",
            f"--schedule={settings.data_dir / 'celerybeat-schedule'}",
            "--scheduler=workers.core.health:HeartbeatScheduler",
        ]
    )


@main.command()
@click.option(
    "--only",
    default="web,worker,beat",
    show_default=True,
    help="Procfile process types to run, comma-separated.",
)
@click.option(
    "--with",
    "extras",
    type=click.Choice(["flower"]),
    multiple=True,
    help="Also run this tool: flower, the Celery monitor (on $FLOWER_PORT, default 5555).",
)
@click.option(
    "--fake-clerk",
    "fake_users",
    type=click.IntRange(min=0),
    metavar="N",
    help="Serve a fake Clerk Backend API with N generated users and point CLERK_* at it.",
)
def dev(only: str, extras: tuple[str, ...], fake_users: int | None) -> None:
    """Run the service locally in the foreground (what `make run` calls).

    Without DATABASE_URL / REDIS_URL it starts an embedded PostgreSQL and Redis under
    $DATA_DIR (default .data/); a second run reuses their data. Ctrl-C stops everything.
    """
    from cpn_sync import local, local_tools, procfile
    from db.migrate import upgrade

    settings = get_settings()
    data_dir = settings.data_dir
    env = dict(os.environ)
    redis: local.RedisServer | None = None
    pg_handle = None
    fake_clerk = contextlib.ExitStack()
    fake_clerk_key = fake_clerk_url = None
    try:
        if fake_users is not None:
            from cpn_sync.fake_clerk import DEFAULT_KEY, FakeClerk, running

            fake = fake_clerk.enter_context(running(FakeClerk.seeded(fake_users)))
            fake_clerk_key, fake_clerk_url = DEFAULT_KEY, fake.api_url
            env.update(CLERK_SECRET_KEY=fake_clerk_key, CLERK_API_URL=fake_clerk_url)
            click.echo(f"fake Clerk API: {fake.api_url} ({fake_users} generated users)")
        if settings.database_url:
            database_url = settings.database_url
        else:
            pg_handle, admin_url = local.start_postgres(data_dir / "postgres")
            database_url = local.ensure_database(admin_url, "cpn")
            click.echo(f"embedded PostgreSQL in {data_dir / 'postgres'}")
        if settings.redis_url:
            redis_url = settings.redis_url
        else:
            redis = local.RedisServer(data_dir / "redis").start()
            redis_url = redis.url
            click.echo(f"embedded Redis on {redis_url}")
        secret = settings.clerk_webhook_secret or local.webhook_secret(data_dir)
        env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, CLERK_WEBHOOK_SECRET=secret)
        if not settings.log_format and sys.stdout.isatty():
            env["LOG_FORMAT"] = "console"  # the children write to a pipe, read on a terminal

        click.echo(f"database at revision {upgrade(database_url)}")
        commands = procfile.read_procfile()
        wanted = [name.strip() for name in only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in commands]
        if unknown:
            raise click.ClickException(f"not in the Procfile: {', '.join(unknown)}")
        chosen = {name: commands[name] for name in wanted}
        if "flower" in extras:
            chosen["flower"] = local_tools.flower_command(env)
        supervisor = procfile.Supervisor(chosen, env)
        webhook_url = f"http://localhost:{settings.port}/webhooks/clerk"
        click.echo(f"webhook URL:    {webhook_url}")
        click.echo(f"signing secret: {secret}")
        if "flower" in extras:
            click.echo(f"Flower:         {local_tools.flower_url(env)}")
        click.echo("Ctrl-C stops everything.")
        stack = dev_stack.DevStack(
            os.getpid(), database_url, redis_url, secret, webhook_url,
            fake_clerk_key, fake_clerk_url,
        )  # fmt: skip
        with dev_stack.published(data_dir, stack):
            supervisor.start()
            status = supervisor.wait()
    except local.LocalServiceError as error:
        raise click.ClickException(str(error)) from None
    finally:
        fake_clerk.close()
        if redis is not None:
            redis.stop()
        if pg_handle is not None:
            pg_handle.cleanup()
        if redis is not None or pg_handle is not None:
            click.echo("embedded servers stopped")
    sys.exit(status)


main.add_command(clerk)
main.add_command(cpn)
main.add_command(send)
main.add_command(events)
