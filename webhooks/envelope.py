"""Parse a verified body as a Clerk event envelope (`cpn_sync.clerk.ClerkEvent`, the model the
workers use too), or refuse it with a 400 that names the fields.

`{"object": "event", "type", "data", "timestamp", ...}`; unknown fields are ignored because Clerk
adds fields over time. Whatever `data` holds is the workers' concern: an event of a type nobody
handles is still stored (and later marked `ignored`).
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from cpn_sync import unstorable
from cpn_sync.clerk import ClerkEvent
from webhooks.errors import Reason, RejectionError


class SecondPassNeeded(Exception):  # noqa: N818 - a signal, not an error
    """orjson refused the body: the second pass may take a while (run it off the event loop)."""


def parse_envelope(
    body: bytes, svix_id: str | None = None, *, first_pass_only: bool = False
) -> tuple[ClerkEvent, str | None]:
    """Parse the verified bytes: the envelope, and the payload text to store when it cannot be
    the body itself (`cpn_sync.unstorable`; None for almost every event). A 400
    `RejectionError` when not JSON or not an envelope."""
    changed = False
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        if first_pass_only:
            raise SecondPassNeeded from None
        document = _tolerant(body, svix_id)  # valid JSON that orjson refuses, or a 400
        document, _problems = unstorable.make_storable(document)
        changed = True
    # A \u0000 that orjson accepted is found when PostgreSQL refuses the row (the inbox then
    # stores `cpn_sync.unstorable.storable_text`): the ordinary body pays nothing for it.
    try:
        envelope = ClerkEvent.model_validate(document)
    except ValidationError as error:
        # Locations and messages only: pydantic keeps the offending input out of `msg`.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        )
        raise RejectionError(
            Reason.NOT_CLERK_EVENT, f"not a Clerk event envelope ({problems})", svix_id=svix_id
        ) from None
    if envelope.object != "event":
        raise RejectionError(
            Reason.NOT_CLERK_EVENT,
            "not a Clerk event envelope (object: should be 'event')",
            svix_id=svix_id,
        )
    return envelope, unstorable.dumps(document) if changed else None


def _tolerant(body: bytes, svix_id: str | None) -> object:
    try:
        return unstorable.tolerant_loads(body.decode())
    except (ValueError, UnicodeDecodeError):
        raise RejectionError(Reason.NOT_JSON, "body is not valid JSON", svix_id=svix_id) from None
