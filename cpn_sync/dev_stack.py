"""The running `make run` stack, as other commands find it (DESIGN.md section 8).

While `cpn-sync dev` runs it keeps `$DATA_DIR/stack.json` (mode 0600: it holds the database URL
and the webhook secret) with its own pid; it removes the file when it stops. A file whose pid is
no longer running was left by a killed run and is ignored as stale. Any other `cpn-sync`
command takes from it what its environment does not set: an explicit variable always wins.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path

from cpn_sync.local import is_running

STACK_FILE = "stack.json"
# The variables the stack provides, and the field of the file that holds each.
PROVIDED = {
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "CLERK_WEBHOOK_SECRET": "webhook_secret",
    # Only under `cpn-sync dev --fake-clerk`: the fake's URL and its (fake) key. A real
    # CLERK_SECRET_KEY is never written to the file.
    "CLERK_SECRET_KEY": "fake_clerk_key",
    "CLERK_API_URL": "fake_clerk_url",
}


@dataclass(frozen=True)
class DevStack:
    pid: int
    database_url: str
    redis_url: str
    webhook_secret: str
    webhook_url: str
    fake_clerk_key: str | None = None
    fake_clerk_url: str | None = None


def stack_path(data_dir: Path) -> Path:
    return data_dir / STACK_FILE


@contextlib.contextmanager
def published(data_dir: Path, stack: DevStack) -> Iterator[None]:
    """Keep the stack's file for the duration of the block (the running `cpn-sync dev`)."""
    path = stack_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{STACK_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(stack), handle)
    os.replace(temporary, path)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if _read(path) == stack:  # not a newer run's file
                path.unlink()


def _read(path: Path) -> DevStack | None:
    try:
        return DevStack(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def running_stack(data_dir: Path) -> DevStack | None:
    """The stack of a `cpn-sync dev` that is running now, or None (no file, or a stale one)."""
    stack = _read(stack_path(data_dir))
    if stack is None or not is_running(stack.pid):
        return None
    return stack


def fill_environment(data_dir: Path, environ: MutableMapping[str, str]) -> dict[str, str]:
    """Set each variable the environment leaves unset from the running stack; answer where each
    provided variable comes from (`environment`, `make run (<file>)` or `unset`)."""
    stack = running_stack(data_dir)
    sources: dict[str, str] = {}
    for variable, field in PROVIDED.items():
        if environ.get(variable, "").strip():
            sources[variable] = "environment"
        elif stack is not None and getattr(stack, field) is not None:
            environ[variable] = getattr(stack, field)
            sources[variable] = f"make run (pid {stack.pid}, {stack_path(data_dir)})"
        else:
            sources[variable] = "unset"
    return sources
