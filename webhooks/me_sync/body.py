"""The optional body of `POST /api/me/sync`: `{"onboarding": {...}}` (DESIGN.md section 4's
object, the browser's session storage). Its shape is checked here; its values are the onboarding
migration's to judge (a failed migration names each bad field)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from cpn_sync.onboarding_key import onboarding_key
from webhooks.me_sync.errors import SyncError, SyncReason


@dataclass(frozen=True, slots=True)
class HandedOver:
    key: str  # the sessionDataId, or the hash of the data (`cpn_sync.onboarding_key`)
    json: str  # the onboarding object as JSON text, as it is stored


def onboarding_of(body: bytes) -> HandedOver | None:
    """None for an empty body, a body without `onboarding` or with `"onboarding": null`."""
    if not body.strip():
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SyncError(SyncReason.NOT_JSON, "the body is not JSON") from None
    if not isinstance(parsed, dict):
        raise SyncError(SyncReason.BAD_BODY, 'the body must be an object: {"onboarding": {...}}')
    onboarding = parsed.get("onboarding")
    if onboarding is None:
        return None
    if not isinstance(onboarding, dict):
        raise SyncError(SyncReason.BAD_BODY, "onboarding must be an object")
    try:
        stored = orjson.dumps(onboarding).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (an onboarding object has 4)
        raise SyncError(SyncReason.BAD_BODY, "onboarding is nested too deep") from None
    return HandedOver(onboarding_key(onboarding), stored)
