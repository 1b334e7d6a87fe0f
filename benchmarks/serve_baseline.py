"""Serve one of the baseline apps exactly as `cpn-sync web` serves cpn-sync."""

from __future__ import annotations

import sys

from cpn_sync.settings import get_settings
from webhooks.server import serve

if __name__ == "__main__":
    serve(get_settings(), app=f"benchmarks.baseline_apps:{sys.argv[1]}")
