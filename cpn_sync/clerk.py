"""The Clerk payload model, one for the web and the workers: the event envelope (what the
endpoint checks and indexes) and the `data` models the handlers map, and nothing more.

Unknown fields are ignored (Clerk adds fields over time). Lengths follow the columns the values
land in: names are cut to their column, and a value that cannot be stored fails validation with
a message naming the field, instead of a database error that might quote personal data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

MAX_EVENT_TYPE_LENGTH = 100  # webhook_events.event_type is varchar(100)
MAX_CLERK_ID_LENGTH = 255
# An envelope timestamp at or above this is in milliseconds (as seconds it would be year 5138).
MILLISECONDS_FROM = 100_000_000_000
LATEST_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def from_epoch_ms(value: Any) -> dt.datetime | None:
    """Clerk's `data.*_at` fields: integer milliseconds since the epoch, UTC."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected epoch milliseconds (an integer)")
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


def envelope_milliseconds(timestamp: int) -> int:
    """The envelope `timestamp` has been published in seconds and in milliseconds: the one
    rule that tells them apart."""
    return timestamp if timestamp >= MILLISECONDS_FROM else timestamp * 1000


# Where an event that is not a `user.*` event names the user it is about, first match wins:
# `data.user_id` (session.*, email.created, sms.created, organizationInvitation.accepted),
# `data.public_user_data.user_id` (organizationMembership.*), `data.payer.user_id`
# (paymentAttempt.*, subscription*.*), `data.created_by` (organization.*). See Clerk's webhook
# schema, `clerk-openapi/webhooks-2025-04-15.yml`.
SUBJECT_USER_PATHS: tuple[tuple[str, ...], ...] = (
    ("user_id",),
    ("public_user_data", "user_id"),
    ("payer", "user_id"),
    ("created_by",),
)


def subject_user_id(event_type: str, data: Any) -> str | None:
    """The Clerk user an event names, whatever its type (`data.id` of `user.*` events, else
    the first of SUBJECT_USER_PATHS), or None. The inbox records it, so that `user.deleted`
    erases every stored payload about the user and the user's events never interleave."""
    paths = [("id",)] if event_type.startswith("user.") else SUBJECT_USER_PATHS
    for path in paths:
        candidate: Any = data
        for key in path:
            candidate = candidate.get(key) if isinstance(candidate, dict) else None
        if isinstance(candidate, str) and 0 < len(candidate) <= MAX_CLERK_ID_LENGTH:
            return candidate
    return None  # stored anyway: the worker records why it cannot apply the event


EpochMs = Annotated[dt.datetime | None, BeforeValidator(from_epoch_ms)]
NAME_LENGTH = 100  # users.first_name, users.last_name: varchar(100)


def cut_to(length: int) -> Callable[[str | None], str | None]:
    """Clerk puts no limit on names, the seed's columns do: a longer value is kept cut to the
    column's length (whole characters: PostgreSQL's varchar counts code points, as Python does),
    never a reason to lose the user or the event (DESIGN.md section 3)."""

    def cut(value: str | None) -> str | None:
        return None if value is None else value[:length]

    return cut


class ClerkModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Verification(ClerkModel):
    status: str | None = None


class EmailAddress(ClerkModel):
    id: str | None = None  # optional in Clerk's published schema
    email_address: str = Field(min_length=3, max_length=255)
    verification: Verification | None = None

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.status == "verified"


class ClerkUser(ClerkModel):
    id: str = Field(min_length=1, max_length=255)
    primary_email_address_id: str | None = None
    email_addresses: list[EmailAddress] = Field(default_factory=list)
    first_name: Annotated[str | None, AfterValidator(cut_to(NAME_LENGTH))] = None
    last_name: Annotated[str | None, AfterValidator(cut_to(NAME_LENGTH))] = None
    image_url: str | None = None
    profile_image_url: str | None = None
    unsafe_metadata: Any = None  # written by the end user's browser: any types
    created_at: EpochMs = None
    updated_at: EpochMs = None
    last_sign_in_at: EpochMs = None

    @property
    def primary_email(self) -> EmailAddress | None:
        """The address whose id is `primary_email_address_id`, else the first; never by
        position when the primary id is known."""
        for address in self.email_addresses:
            if address.id is not None and address.id == self.primary_email_address_id:
                return address
        return self.email_addresses[0] if self.email_addresses else None

    @property
    def onboarding(self) -> Any | None:
        """The session-storage data the front end put into `unsafe_metadata` (DESIGN.md §4)."""
        metadata = self.unsafe_metadata
        return metadata.get("onboarding") if isinstance(metadata, dict) else None


class DeletedUser(ClerkModel):
    id: str = Field(min_length=1, max_length=255)
    deleted: bool | None = None


class SessionActivity(ClerkModel):
    device_type: str | None = None
    is_mobile: bool | None = None
    browser_name: str | None = None
    browser_version: str | None = None
    ip_address: str | None = None
    city: str | None = None
    country: str | None = None


class ClerkSession(ClerkModel):
    id: str = Field(min_length=1, max_length=255)
    user_id: str = Field(min_length=1, max_length=255)
    # The user's snapshot matters only when the user must be created from it: validated then
    # (a session event validates only what it uses).
    user: Any = None
    status: str | None = None
    latest_activity: SessionActivity | None = None
    created_at: EpochMs = None
    updated_at: EpochMs = None
    last_active_at: EpochMs = None
    expire_at: EpochMs = None


class HttpRequest(ClerkModel):
    client_ip: str | None = None
    user_agent: str | None = None


class EventAttributes(ClerkModel):
    http_request: HttpRequest | None = None


class ClerkEvent(ClerkModel):
    """The envelope: `{data, object, type, timestamp, instance_id, event_attributes}`.

    The web stores an event only when `object` is `"event"`; `event_attributes` is read (and
    validated) only by the handlers that use it, so that the web never refuses a verified
    event for its content.
    """

    object: str | None = None
    type: str = Field(min_length=1, max_length=MAX_EVENT_TYPE_LENGTH)
    data: dict[str, Any]
    timestamp: int | None = Field(default=None, ge=0, le=LATEST_TIMESTAMP_MS)
    event_attributes: Any = None

    @property
    def clerk_user_id(self) -> str | None:
        """The user the event is about (`subject_user_id`)."""
        return subject_user_id(self.type, self.data)

    @property
    def occurred_at_ms(self) -> int | None:
        return None if self.timestamp is None else envelope_milliseconds(self.timestamp)

    @property
    def occurred_at(self) -> dt.datetime | None:
        ms = self.occurred_at_ms
        return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)

    @property
    def http_request(self) -> HttpRequest | None:
        if self.event_attributes is None:
            return None
        return EventAttributes.model_validate(self.event_attributes).http_request
