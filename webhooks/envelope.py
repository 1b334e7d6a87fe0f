"""The Clerk event envelope: what the endpoint needs from a verified body, nothing more.

`{"object": "event", "type", "data", "timestamp", ...}`; unknown fields are ignored because Clerk
adds fields over time. Whatever `data` holds is the workers' concern: an event of a type nobody
handles is still stored (and later marked `ignored`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from webhooks.errors import Reason, RejectionError

MAX_EVENT_TYPE_LENGTH = 100  # webhook_events.event_type is varchar(100)
MAX_CLERK_ID_LENGTH = 255
# An envelope timestamp at or above this is in milliseconds (as seconds it would be year 5138).
MILLISECONDS_FROM = 100_000_000_000
LATEST_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class EventData(BaseModel):
    """The two ids the inbox indexes; every other field of `data` is kept in the stored payload."""

    model_config = ConfigDict(extra="ignore")

    id: Any = None
    user_id: Any = None


class ClerkEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    object: Literal["event"]
    type: str = Field(min_length=1, max_length=MAX_EVENT_TYPE_LENGTH)
    data: EventData
    timestamp: int | None = Field(default=None, ge=0, le=LATEST_TIMESTAMP_MS)

    @property
    def clerk_user_id(self) -> str | None:
        """`data.id` of `user.*` events, `data.user_id` of `session.*` events, else none."""
        if self.type.startswith("user."):
            candidate = self.data.id
        elif self.type.startswith("session."):
            candidate = self.data.user_id
        else:
            return None
        if isinstance(candidate, str) and 0 < len(candidate) <= MAX_CLERK_ID_LENGTH:
            return candidate
        return None  # stored anyway: the worker records why it cannot apply the event

    @property
    def occurred_at_ms(self) -> int | None:
        """The envelope timestamp in milliseconds: Clerk has sent seconds and milliseconds."""
        if self.timestamp is None:
            return None
        return self.timestamp if self.timestamp >= MILLISECONDS_FROM else self.timestamp * 1000

    @property
    def occurred_at(self) -> dt.datetime | None:
        ms = self.occurred_at_ms
        return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def parse_envelope(body: bytes, svix_id: str | None = None) -> ClerkEnvelope:
    """Parse the verified bytes; a 400 `RejectionError` when not JSON or not an envelope."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RejectionError(Reason.NOT_JSON, "body is not valid JSON", svix_id=svix_id) from None
    try:
        return ClerkEnvelope.model_validate(document)
    except ValidationError as error:
        # Locations and messages only: pydantic keeps the offending input out of `msg`.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        )
        raise RejectionError(
            Reason.NOT_CLERK_EVENT, f"not a Clerk event envelope ({problems})", svix_id=svix_id
        ) from None
