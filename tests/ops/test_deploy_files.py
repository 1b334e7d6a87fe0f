"""The Procfile, docker-compose.yml and the Dockerfile agree with the code and with each other.

No Docker engine runs here, so the files are parsed and checked (tests/ops/deploy_checks.py);
the negative tests feed the checker broken variants to show that it notices.
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from cpn_sync.procfile import read_procfile
from tests.ops import deploy_checks as checks
from tests.ops.dockerfile_checks import check_dockerfile, client_major

ROOT = checks.ROOT
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return checks.load_compose()


@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    return read_procfile(ROOT / "Procfile")


def packages() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]


class TestProcfile:
    def test_has_the_four_process_types_running_real_commands(
        self, procfile: dict[str, str]
    ) -> None:
        assert list(procfile) == ["release", "web", "worker", "beat"]
        for command in procfile.values():
            assert checks.check_command(command) == []

    @pytest.mark.parametrize("kind", ["release", "web", "worker", "beat"])
    def test_each_command_answers_help(self, procfile: dict[str, str], kind: str) -> None:
        """The console script and its subcommand exist in the installed package."""
        argv = checks.tokens(procfile[kind])
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        result = subprocess.run(
            [*argv, "--help"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Usage: cpn-sync {argv[1]}")


class TestCompose:
    def test_services_match_the_procfile(
        self, compose: dict[str, Any], procfile: dict[str, str]
    ) -> None:
        assert checks.check_services(compose, procfile) == []

    def test_every_variable_set_is_read_by_its_program(self, compose: dict[str, Any]) -> None:
        assert checks.check_environment(compose) == []

    def test_start_order_scaling_and_durability(self, compose: dict[str, Any]) -> None:
        assert checks.check_topology(compose) == []

    def test_healthchecks_init_and_a_grace_longer_than_any_task(
        self, compose: dict[str, Any]
    ) -> None:
        assert checks.check_operations(compose) == []

    def test_env_example_names_every_variable_the_compose_file_reads(self) -> None:
        example = (ROOT / ".env.example").read_text().splitlines()
        names = {
            line.split("=", 1)[0] for line in example if line.strip() and not line.startswith("#")
        }
        assert names == checks.compose_variables()

    def test_env_file_is_never_committed_nor_sent_to_a_build(self) -> None:
        for ignore_file in (".gitignore", ".dockerignore"):
            assert ".env" in (ROOT / ignore_file).read_text().split(), ignore_file
        ignored = subprocess.run(
            ["git", "check-ignore", "--quiet", ".env"], cwd=ROOT, check=False
        ).returncode
        assert ignored == 0

    def test_flower_runs_from_the_image_when_asked_for(self, compose: dict[str, Any]) -> None:
        flower = compose["services"]["flower"]
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        argv = [sys.executable, *checks.tokens(flower["command"])[1:], "--help"]
        result = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "flower" in result.stdout
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
        assert pyproject["project"]["optional-dependencies"]["flower"] == ["flower>=2.0"]


class TestDockerfile:
    def test_small_non_root_image_that_runs_cpn_sync(self) -> None:
        text = (ROOT / "Dockerfile").read_text()
        assert check_dockerfile(text, packages()) == []

    def test_beat_keeps_its_schedule_in_a_volume_at_the_images_data_dir(
        self, compose: dict[str, Any]
    ) -> None:
        final_env = DockerfileParser(fileobj=io.BytesIO((ROOT / "Dockerfile").read_bytes())).envs
        assert f"beat-data:{final_env['DATA_DIR']}" in compose["services"]["beat"]["volumes"]

    def test_client_programs_of_the_compose_servers_major_for_backup(
        self, compose: dict[str, Any]
    ) -> None:
        server_major = compose["services"]["postgres"]["image"].split(":")[1].split(".")[0]
        assert client_major((ROOT / "Dockerfile").read_text()) == server_major

    def test_no_local_data_reaches_the_build_context(self) -> None:
        ignored = (ROOT / ".dockerignore").read_text().split()
        for entry in (".data", ".venv", ".git", "backups", "*.sql", "tests"):
            assert entry in ignored


def mutated(compose: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy with `service.key` set to a value (None removes the key)."""
    broken = copy.deepcopy(compose)
    for path, value in changes.items():
        service, key = path.split("__")
        if value is None:
            broken["services"][service].pop(key, None)
        else:
            broken["services"][service][key] = value
    return broken


class TestTheCheckerNotices:
    """Each check run on a broken variant names the problem."""

    def test_an_unknown_environment_variable(self, compose: dict[str, Any]) -> None:
        env = {**compose["services"]["worker"]["environment"], "WORKER_CONCURENCY": "4"}
        problems = checks.check_environment(mutated(compose, worker__environment=env))
        assert problems == ["service worker: WORKER_CONCURENCY is read by nothing it runs"]

    def test_a_postgres_variable_on_an_app_service_and_an_unknown_flower_option(
        self, compose: dict[str, Any]
    ) -> None:
        broken = mutated(
            compose,
            web__environment=["POSTGRES_PASSWORD=x", "PORT=8000"],
            flower__environment={"FLOWER_BASIC_AUTH": None, "FLOWER_NO_SUCH_OPTION": "1"},
        )
        assert checks.check_environment(broken) == [
            "service web: POSTGRES_PASSWORD is read by nothing it runs",
            "service flower: FLOWER_NO_SUCH_OPTION is read by nothing it runs",
        ]

    @pytest.mark.parametrize(
        ("command", "problem"),
        [
            ("cpn-sync wrker", "'wrker' is not a subcommand"),
            ("cpn-sync worker --concurrency=4", "No such option"),
            ("celery -A workers.app worker", "runs neither cpn-sync nor a python module"),
            ("python -m no_such_module", "module no_such_module is not importable"),
            ("python -m celery --app=workers.app:app flowr", "celery has no 'flowr' command"),
            ("python -m celery --app=cpn_sync.settings:Settings flower", "is not a Celery app"),
        ],
    )
    def test_a_command_that_cannot_run(self, command: str, problem: str) -> None:
        (found,) = checks.check_command(command)
        assert problem in found

    def test_no_healthcheck_no_init_and_a_short_grace(self, compose: dict[str, Any]) -> None:
        broken = mutated(
            compose,
            beat__healthcheck=None,
            worker__healthcheck={"test": ["CMD", "true"]},
            worker__stop_grace_period="1m",
            release__init=None,
            web__stop_grace_period=None,
        )
        assert checks.check_operations(broken) == [
            "service worker is not checked by cpn-sync worker --healthcheck",
            "service beat has no healthcheck",
            "service release runs without init: true",
            "web stop_grace_period 10 s is not longer than the web's own shutdown (open requests, "
            "then queued rows written and published: 30 s)",
            "worker stop_grace_period 60 s is shorter than the longest task time limit (300 s)",
        ]

    def test_a_service_that_drifts_from_the_procfile(
        self, compose: dict[str, Any], procfile: dict[str, str]
    ) -> None:
        broken = mutated(compose, beat__command=["cpn-sync", "worker"])
        del broken["services"]["release"]
        assert checks.check_services(broken, procfile) == [
            "compose services ['beat', 'flower', 'postgres', 'redis', 'web', 'worker'] are not "
            "['beat', 'flower', 'postgres', 'redis', 'release', 'web', 'worker']",
            "Procfile type release has no compose service",
            "service beat does not run the Procfile's 'cpn-sync beat'",
        ]

    def test_scaling_start_order_and_durability_mistakes(self, compose: dict[str, Any]) -> None:
        broken = mutated(
            compose,
            worker__container_name="cpn-worker",
            beat__deploy={"replicas": 2},
            web__depends_on={"postgres": {"condition": "service_healthy"}},
            redis__command=["redis-server", "--appendonly", "no"],
            postgres__healthcheck=None,
            postgres__volumes=["./pgdata:/var/lib/postgresql/data"],
            flower__profiles=None,
        )
        assert checks.check_topology(broken) == [
            "service postgres has no healthcheck",
            "service postgres keeps /var/lib/postgresql/data in no named volume",
            "redis does not run with --appendonly yes",
            "redis does not run with --maxmemory-policy noeviction",
            "service web does not wait for release to complete",
            "worker sets container_name, so it cannot scale",
            "beat must run exactly one replica",
            "service flower has profiles None",
        ]

    def test_a_root_editable_dockerfile_that_runs_something_else(self) -> None:
        text = (ROOT / "Dockerfile").read_text()
        broken = (
            text.replace("USER 10001:10001", "USER root")
            .replace(
                "uv sync --locked --no-dev --extra flower --extra sentry --no-editable",
                "uv sync --extra flower --extra local",
            )
            .replace("pip install --no-deps --require-hashes", "pip install --no-deps")
            .replace('CMD ["cpn-sync", "web"]', 'CMD ["uvicorn", "webhooks.app:app"]')
            .replace("COPY workers ./workers\n", "")
            .replace("PYTHONUNBUFFERED=1", "PYTHONUNBUFERED=1")
        )
        assert check_dockerfile(broken, packages()) == [
            "the package is never installed from the lock (uv sync --no-editable)",
            "'pip install --no-deps -r requirements/uv.txt' installs something that is not "
            "locked by hash",
            "'uv sync --extra flower --extra local' may change the lock (no --locked)",
            "'uv sync --extra flower --extra local' installs the dev group",
            "'uv sync --extra flower --extra local' installs the embedded servers (the local "
            "extra)",
            "package workers is not copied into the build",
            "the final stage runs as root (no USER, or USER root/0)",
            "the image starts ['uvicorn', 'webhooks.app:app'], not cpn-sync",
            "uvicorn webhooks.app:app: runs neither cpn-sync nor a python module",
            "the Dockerfile sets PYTHONUNBUFERED, which nothing reads",
        ]
