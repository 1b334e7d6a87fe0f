"""`cpn-sync backup` and `restore` on a terminal show how many bytes they have written or
loaded (a big dump takes minutes); into a pipe they print no progress at all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from cpn_sync.backup.progress import human_bytes
from tests.ops.backup_data import fill
from tests.ops.terminal import TerminalProcess
from tests.services import ROOT, TestServers

CLI = sys.prefix + "/bin/cpn-sync"


def test_bytes_on_a_terminal_and_nothing_in_a_pipe(
    test_servers: TestServers, tmp_path: Path
) -> None:
    source = test_servers.new_database()
    fill(source)
    env = {**os.environ, "DATABASE_URL": source}

    made = TerminalProcess([CLI, "backup", "--out", str(tmp_path / "out")], env, ROOT)
    assert made.finish() == 0, made.output
    (dump,) = (tmp_path / "out").iterdir()
    env["DATABASE_URL"] = test_servers.new_database()
    loaded = TerminalProcess([CLI, "restore", str(dump)], env, ROOT)
    assert loaded.finish() == 0, loaded.output
    piped = subprocess.run(
        [CLI, "backup", "--out", str(tmp_path / "piped")],
        env={**env, "DATABASE_URL": source}, capture_output=True, text=True, check=False,
    )  # fmt: skip

    size = human_bytes(dump.stat().st_size)
    assert f"\rwritten: {size}\033[K\n" in made.output
    assert re.search(rf"\rloaded: {re.escape(size)} of {re.escape(size)}\033\[K\n", loaded.output)
    assert "total_users=4" in loaded.output
    assert piped.returncode == 0, piped.stderr
    assert "written:" not in piped.stdout + piped.stderr
    assert "\r" not in piped.stdout + piped.stderr


def test_sizes_read_as_a_person_says_them() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 1_234_567, 5 * 10**9)] == [
        "0 B", "999 B", "1.0 kB", "1.2 MB", "5.0 GB",
    ]  # fmt: skip
