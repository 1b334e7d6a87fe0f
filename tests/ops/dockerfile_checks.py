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
BUILD_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_CACHE_DIR"}


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
    runs = " ".join(i["value"] for stage in stages for i in stage if i["instruction"] == "RUN")
    if "pip install" not in runs:
        problems.append("the package is never pip-installed")
    for bad in ("--editable", "pip install -e", "[test", ",test", "requirements-dev"):
        if bad in runs:
            problems.append(f"the image installs {bad!r} (editable or dev/test dependencies)")
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
