"""Tools `cpn-sync dev --with ...` runs beside the Procfile's processes, for a developer."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping

DEFAULT_FLOWER_PORT = "5555"


def _flower_port(env: Mapping[str, str]) -> str:
    return env.get("FLOWER_PORT") or DEFAULT_FLOWER_PORT


def flower_command(env: Mapping[str, str]) -> str:
    """Flower, the Celery monitor, on 127.0.0.1 only (it has no login unless
    FLOWER_BASIC_AUTH is set), as the compose file's opt-in service runs it."""
    python = shlex.quote(sys.executable)
    return (
        f"{python} -m celery --app=workers.app:app flower "
        f"--address=127.0.0.1 --port={int(_flower_port(env))}"
    )


def flower_url(env: Mapping[str, str]) -> str:
    return f"http://localhost:{int(_flower_port(env))}/"
