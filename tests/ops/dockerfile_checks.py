"""Checks of the Dockerfile: a small python:3.11-slim image with the package installed, a
non-root user, cpn-sync as its command, and only environment variables that something reads."""

from __future__ import annotations

import io
import shlex
from collections.abc import Iterator
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

from tests.ops.deploy_checks import check_command, setting_names, tokens

# Set in the image for Python and pip themselves.
IMAGE_ENV = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
BUILD_ENV = {
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_NO_CACHE_DIR",
    "UV_COMPILE_BYTECODE",
    "UV_LINK_MODE",
    "UV_NO_CACHE",
    "UV_PYTHON_DOWNLOADS",
    "UV_PROJECT_ENVIRONMENT",
}


def dockerfile_stages(text: str) -> list[list[dict[str, Any]]]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    stages: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _env_names(stage: list[dict[str, Any]]) -> Iterator[str]:
    for instruction in stage:
        if instruction["instruction"] == "ENV":
            for part in shlex.split(instruction["value"]):
                yield part.split("=", 1)[0]


def check_dockerfile(text: str, packages: list[str]) -> list[str]:
    """A small python:3.11-slim image, the package installed (not editable, no test extras),
    every package copied, a non-root user, and cpn-sync as the command."""
    stages = dockerfile_stages(text)
    problems = []
    if not stages or not all(stage[0]["value"].startswith("python:3.11-slim") for stage in stages):
        problems.append("every stage must build FROM python:3.11-slim")
        return problems
    final = stages[-1]
    run_lines = [i["value"] for stage in stages for i in stage if i["instruction"] == "RUN"]
    problems += check_installs_from_the_lock(run_lines)
    copied = " ".join(
        i["value"] for stage in stages for i in stage if i["instruction"] == "COPY"
    ).split()
    for package in packages:
        if package not in copied:
            problems.append(f"package {package} is not copied into the build")
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the final stage runs as root (no USER, or USER root/0)")
    starts = [i["value"] for i in final if i["instruction"] in ("CMD", "ENTRYPOINT")]
    if not starts:
        problems.append("the image has no CMD or ENTRYPOINT")
    else:
        argv = yaml.safe_load(starts[-1]) if starts[-1].startswith("[") else starts[-1]
        if tokens(argv)[:1] != ["cpn-sync"]:
            problems.append(f"the image starts {argv!r}, not cpn-sync")
        problems += check_command(argv)
    allowed = setting_names() | IMAGE_ENV | BUILD_ENV
    problems += [
        f"the Dockerfile sets {name}, which nothing reads"
        for stage in stages
        for name in _env_names(stage)
        if name not in allowed
    ]
    return problems


def check_installs_from_the_lock(run_lines: list[str]) -> list[str]:
    """uv by hash, then the package and exactly the locked runtime dependencies: no pip install
    of anything else, no editable install, no dev group, no embedded servers."""
    problems = []
    installs = [
        command.strip()
        for line in run_lines
        for command in line.split("&&")
        if "pip install" in command or "uv sync" in command or "uv pip" in command
    ]
    syncs = [command for command in installs if command.startswith("uv sync")]
    if not syncs or "--no-editable" not in syncs[-1]:
        problems.append("the package is never installed from the lock (uv sync --no-editable)")
    for command in installs:
        words = command.split()
        if command.startswith("uv sync"):
            if "--locked" not in words and "--frozen" not in words:
                problems.append(f"{command!r} may change the lock (no --locked)")
            if "--no-dev" not in words:
                problems.append(f"{command!r} installs the dev group")
            if "local" in words or "--all-extras" in words:
                problems.append(f"{command!r} installs the embedded servers (the local extra)")
        elif command.startswith("pip install"):
            if "--require-hashes" not in words or "requirements/uv.txt" not in words:
                problems.append(f"{command!r} installs something that is not locked by hash")
        else:
            problems.append(f"{command!r} installs around the lock")
    return problems


def client_major(text: str) -> str | None:
    """The PostgreSQL client major the image installs (`postgresql-client-${PG_MAJOR}`)."""
    stages = dockerfile_stages(text)
    args = {
        name: value
        for instruction in stages[-1]
        if instruction["instruction"] == "ARG" and "=" in instruction["value"]
        for name, value in [instruction["value"].split("=", 1)]
    }
    for instruction in stages[-1]:
        if instruction["instruction"] == "RUN" and "postgresql-client-" in instruction["value"]:
            wanted = instruction["value"].split("postgresql-client-", 1)[1].split()[0].strip('"')
            return args.get("PG_MAJOR") if wanted == "${PG_MAJOR}" else wanted
    return None
