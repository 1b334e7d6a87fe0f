"""The key that makes an onboarding hand-over idempotent: its `sessionDataId`, else a hash of
its canonical JSON. Shared by the web (the `me_sync_requests` row of a call) and the workers
(the `data_migrations` row), so that both name the same data alike."""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_SESSION_DATA_ID_LENGTH = 255


def onboarding_key(onboarding: Any) -> str:
    """`sessionDataId` when it is usable text, else a stable hash of the object's canonical JSON
    (the same data hashes alike whether it came from a webhook, a call or an import line)."""
    if isinstance(onboarding, dict):
        given = onboarding.get("sessionDataId")
        if isinstance(given, str) and 0 < len(given.strip()) <= MAX_SESSION_DATA_ID_LENGTH:
            return given.strip()
    canonical = json.dumps(onboarding, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
