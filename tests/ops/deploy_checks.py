"""Checks of the deployment files that no Docker engine runs here: the Procfile's and the compose
file's commands, against the command line, the settings and each other (the Dockerfile's are in
`dockerfile_checks`).

Each check answers a list of problems (empty when all is well), so that a test can feed it a
broken variant and see the problem named.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("release", "web", "worker", "beat")
SERVICES = {*APP_SERVICES, "postgres", "redis", "flower"}

# Variables read by the third-party images, not by our settings: each image's own documented set.
THIRD_PARTY_ENV = {
    "postgres": {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "PGDATA"},
    "redis": set(),
}


def load_compose(path: Path = ROOT / "docker-compose.yml") -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def setting_names() -> set[str]:
    from cpn_sync.settings import Settings

    return {name.upper() for name in Settings.model_fields}


def flower_env_names() -> set[str]:
    """`FLOWER_<option>` for each Flower option (Flower exits on an unknown FLOWER_ variable)."""
    from flower.options import options

    return {"FLOWER_" + name.replace("-", "_").upper() for name in options}


def tokens(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


# --- commands -------------------------------------------------------------------------------


def check_command(command: str | list[str]) -> list[str]:
    """A command must run a real `cpn-sync` subcommand or an importable module (`python -m`)."""
    argv = tokens(command)
    if argv[:1] == ["cpn-sync"]:
        from cpn_sync.cli import main

        return _check_click(main, argv)
    if len(argv) >= 3 and argv[0] in ("python", "python3") and argv[1] == "-m":
        if importlib.util.find_spec(argv[2]) is None:
            return [f"{shlex.join(argv)}: module {argv[2]} is not importable"]
        if argv[2] == "celery":
            return _check_celery(argv)
        return []
    return [f"{shlex.join(argv)}: runs neither cpn-sync nor a python module"]


def _check_click(group: click.Command, argv: list[str]) -> list[str]:
    """Walk the subcommands, then let click parse the remaining options as it would at run time."""
    command, rest = group, argv[1:]
    with click.Context(group, info_name=argv[0]) as ctx:
        while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
            sub = command.get_command(ctx, rest[0])
            if sub is None:
                return [f"{shlex.join(argv)}: {rest[0]!r} is not a subcommand"]
            command, rest = sub, rest[1:]
        if isinstance(command, click.Group):
            return [f"{shlex.join(argv)}: names the group {command.name!r}, not a command"]
        try:
            command.make_context(command.name, list(rest), parent=ctx)
        except click.UsageError as error:
            return [f"{shlex.join(argv)}: {error.format_message()}"]
    return []


def _check_celery(argv: list[str]) -> list[str]:
    """`python -m celery --app=module:attr <subcommand> ...`: the app and the subcommand exist."""
    from celery import Celery
    from celery.bin.celery import celery as celery_group

    rest = argv[3:]
    app_spec = next((arg.split("=", 1)[1] for arg in rest if arg.startswith("--app=")), None)
    if app_spec is None:
        return [f"{shlex.join(argv)}: no --app=module:attribute"]
    module, _, attribute = app_spec.partition(":")
    app = getattr(importlib.import_module(module), attribute or "app", None)
    if not isinstance(app, Celery):
        return [f"{shlex.join(argv)}: {app_spec} is not a Celery app"]
    subcommand = next(arg for arg in rest if not arg.startswith("-"))
    with click.Context(celery_group) as ctx:
        if celery_group.get_command(ctx, subcommand) is None:
            return [f"{shlex.join(argv)}: celery has no {subcommand!r} command"]
    return []


# --- compose --------------------------------------------------------------------------------


def environment(service: Mapping[str, Any]) -> dict[str, Any]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    return dict(raw)


def check_environment(compose: Mapping[str, Any]) -> list[str]:
    """Every variable a service sets is one that its program reads."""
    ours, flower = setting_names(), flower_env_names()
    problems = []
    for name, service in compose["services"].items():
        allowed = THIRD_PARTY_ENV.get(name, ours | (flower if name == "flower" else set()))
        problems += [
            f"service {name}: {variable} is read by nothing it runs"
            for variable in environment(service)
            if variable not in allowed
        ]
    return problems


def check_services(compose: Mapping[str, Any], procfile: Mapping[str, str]) -> list[str]:
    """One compose service per Procfile type, running exactly the Procfile's command."""
    services = compose["services"]
    problems = []
    if set(procfile) != set(APP_SERVICES):
        problems.append(f"Procfile types {sorted(procfile)} are not {sorted(APP_SERVICES)}")
    if set(services) != SERVICES:
        problems.append(f"compose services {sorted(services)} are not {sorted(SERVICES)}")
    for kind, command in procfile.items():
        if kind not in services:
            problems.append(f"Procfile type {kind} has no compose service")
        elif tokens(services[kind].get("command", [])) != tokens(command):
            problems.append(f"service {kind} does not run the Procfile's {command!r}")
    for name, service in services.items():
        if name not in THIRD_PARTY_ENV and "command" in service:  # our image's commands
            problems += check_command(service["command"])
    return problems


def check_topology(compose: Mapping[str, Any]) -> list[str]:
    """Start order, scaling and durability rules of the issue (see the compose file's comments)."""
    services, volumes = compose["services"], set(compose.get("volumes") or {})
    problems = []
    for name, image, data in (("postgres", "postgres:16", "/var/lib/postgresql/data"),
                              ("redis", "redis:7", "/data")):  # fmt: skip
        service = services.get(name, {})
        if not str(service.get("image", "")).startswith(image):
            problems.append(f"service {name} is not {image}")
        if not service.get("healthcheck", {}).get("test"):
            problems.append(f"service {name} has no healthcheck")
        mounts = [str(v).split(":") for v in service.get("volumes", [])]
        if not any(m[0] in volumes and m[1] == data for m in mounts if len(m) >= 2):
            problems.append(f"service {name} keeps {data} in no named volume")
    redis_command = tokens(services.get("redis", {}).get("command", []))
    for option, value in (("--appendonly", "yes"), ("--maxmemory-policy", "noeviction")):
        if not _has_option(redis_command, option, value):
            problems.append(f"redis does not run with {option} {value}")
    release_after = services.get("release", {}).get("depends_on", {})
    if _condition(release_after, "postgres") != "service_healthy":
        problems.append("release does not wait for a healthy postgres")
    for name in ("web", "worker", "beat", "flower"):
        if _condition(services.get(name, {}).get("depends_on", {}), "release") != (
            "service_completed_successfully"
        ):
            problems.append(f"service {name} does not wait for release to complete")
    worker = services.get("worker", {})
    for key in ("container_name", "ports"):
        if key in worker:
            problems.append(f"worker sets {key}, so it cannot scale")
    beat = services.get("beat", {})
    replicas = beat.get("deploy", {}).get("replicas", 1)
    if replicas != 1 or beat.get("scale", 1) != 1:
        problems.append("beat must run exactly one replica")
    if not services.get("web", {}).get("ports"):
        problems.append("web publishes no port")
    for name, service in services.items():
        expected = ["flower"] if name == "flower" else None
        if service.get("profiles") != expected:
            problems.append(f"service {name} has profiles {service.get('profiles')}")
    return problems


def web_shutdown_seconds() -> float:
    """The longest a `cpn-sync web` takes after SIGTERM: uvicorn's graceful timeout for open
    requests, then the lifespan's bounded writes and publishes."""
    from webhooks import inbox, publisher, server

    return float(
        server.GRACEFUL_SHUTDOWN_SECONDS
        + inbox.CLOSE_TIMEOUT_SECONDS
        + publisher.CLOSE_TIMEOUT_SECONDS
    )


def longest_task_time_limit() -> float:
    """The longest hard time limit of any task the worker runs (a task's own, or the app's)."""
    from workers.app import app

    app.loader.import_default_modules()
    default = float(app.conf.task_time_limit or 0)
    return max(
        float(task.time_limit or default)
        for name, task in app.tasks.items()
        if not name.startswith("celery.")
    )


def seconds(duration: str) -> float:
    """A compose duration (`330s`, `5m30s`, `1h`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total, number = 0.0, ""
    for part in re.findall(r"\d+(?:\.\d+)?|ms|[hms]", str(duration)):
        if part in units:
            total, number = total + float(number) * units[part], ""
        else:
            number = part
    return total


def check_operations(compose: Mapping[str, Any]) -> list[str]:
    """What a deploy and a restart need: a healthcheck for every long-running process of ours,
    a real init as PID 1, a web grace that outlasts its bounded shutdown, and a worker grace
    that outlasts its longest task."""
    services = compose["services"]
    problems = []
    for name in ("web", "worker", "beat"):
        test = services.get(name, {}).get("healthcheck", {}).get("test")
        if not test:
            problems.append(f"service {name} has no healthcheck")
        elif name != "web" and tokens(test)[1:] != ["cpn-sync", name, "--healthcheck"]:
            problems.append(f"service {name} is not checked by cpn-sync {name} --healthcheck")
    for name in (*APP_SERVICES, "flower"):
        if services.get(name, {}).get("init") is not True:
            problems.append(f"service {name} runs without init: true")
    web_grace = seconds(services.get("web", {}).get("stop_grace_period", "10s"))
    if web_grace <= web_shutdown_seconds():
        problems.append(
            f"web stop_grace_period {web_grace:g} s is not longer than the web's own shutdown "
            f"(open requests, then queued rows written and published: {web_shutdown_seconds():g} s)"
        )
    grace = seconds(services.get("worker", {}).get("stop_grace_period", "10s"))
    if grace < longest_task_time_limit():
        problems.append(
            f"worker stop_grace_period {grace:g} s is shorter than the longest task time limit "
            f"({longest_task_time_limit():g} s)"
        )
    return problems


def compose_variables(path: Path = ROOT / "docker-compose.yml") -> set[str]:
    """Every variable the compose file reads from the shell or .env: `${NAME...}` and the names
    passed through without a value."""
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    for service in load_compose(path)["services"].values():
        names |= {name for name, value in environment(service).items() if value is None}
    return names


def _condition(depends_on: Any, name: str) -> str | None:
    if isinstance(depends_on, list):
        return "service_started" if name in depends_on else None
    entry = depends_on.get(name)
    return None if entry is None else str(entry.get("condition", "service_started"))


def _has_option(argv: list[str], option: str, value: str) -> bool:
    pairs = itertools.pairwise(argv)
    return any(a == option and b == value for a, b in pairs) or f"{option}={value}" in argv
