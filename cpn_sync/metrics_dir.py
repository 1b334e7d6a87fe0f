"""Where a process with several children keeps its prometheus-client multiprocess files.

prometheus-client decides when it is first imported whether metrics live in memory or in
per-process files under PROMETHEUS_MULTIPROC_DIR, so the directory is chosen here, before
anything imports it (this module must not import prometheus-client itself). Files left by an
earlier run would add old counts to the new ones: the directory always starts empty.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir(
    *, private: bool = False, prefix: str = "cpn-metrics-"
) -> tuple[Path, bool]:
    """Use $PROMETHEUS_MULTIPROC_DIR (emptied) or a new temporary directory; export it.

    `private` ignores a configured directory: a worker must not share (and empty) the one
    that the web processes of the same host were told to use. Answers the directory and
    whether it is ours to remove afterwards.
    """
    configured = None if private else os.environ.get(MULTIPROC_ENV)
    if configured:
        path = Path(configured)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path, False
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ[MULTIPROC_ENV] = str(path)
    return path, True


@contextmanager
def multiprocess_metrics(*, private: bool = False, prefix: str = "cpn-metrics-") -> Iterator[Path]:
    """A fresh metrics directory for the block; a temporary one is removed afterwards."""
    path, temporary = prepare_metrics_dir(private=private, prefix=prefix)
    try:
        yield path
    finally:
        if temporary:
            shutil.rmtree(path, ignore_errors=True)
