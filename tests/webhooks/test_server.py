"""How `cpn-sync web` prepares the multiprocess metrics before uvicorn starts its workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cpn_sync.metrics_dir import MULTIPROC_ENV, prepare_metrics_dir
from tests.services import environment


def test_the_command_line_does_not_import_prometheus_client_before_web_sets_its_dir() -> None:
    """prometheus-client picks single- or multi-process mode when first imported."""
    probe = "import sys, cpn_sync.cli; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_configured_metrics_dir_is_emptied_and_kept(tmp_path: Path) -> None:
    configured = tmp_path / "metrics"
    configured.mkdir()
    (configured / "counter_12345.db").write_bytes(b"old counts")
    with environment(**{MULTIPROC_ENV: str(configured)}):
        path, temporary = prepare_metrics_dir()
    assert (path, temporary) == (configured, False)
    assert list(configured.iterdir()) == []


def test_without_configuration_a_new_directory_is_exported() -> None:
    # `environment` puts the variable back as it was (absent), also after the function set it.
    with environment(**{MULTIPROC_ENV: None}):
        path, temporary = prepare_metrics_dir()
        try:
            assert temporary
            assert os.environ[MULTIPROC_ENV] == str(path)
            assert path.is_dir()
            assert list(path.iterdir()) == []
        finally:
            path.rmdir()
