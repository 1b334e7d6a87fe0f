"""Pydantic models of the Clerk data the handlers map, and nothing more.

Unknown fields are ignored (Clerk adds fields over time). Lengths follow the columns the values
land in, so a value that cannot be stored fails validation with a message naming the field,
instead of a database error that might quote personal data.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Above this an envelope `timestamp` is in milliseconds (10 digits = seconds until year 2286).
_MILLISECONDS_FROM = 10**11


def from_epoch_ms(value: Any) -> dt.datetime | None:
    """Clerk's `data.*_at` fields: integer milliseconds since the epoch, UTC."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected epoch milliseconds (an integer)")
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


def from_envelope_timestamp(value: int | float) -> dt.datetime:
    """The envelope `timestamp` has been published in seconds and in milliseconds: accept both."""
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


EpochMs = Annotated[dt.datetime | None, BeforeValidator(from_epoch_ms)]


class ClerkModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Verification(ClerkModel):
    status: str | None = None


class EmailAddress(ClerkModel):
    id: str
    email_address: str = Field(min_length=3, max_length=255)
    verification: Verification | None = None

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.status == "verified"


class ClerkUser(ClerkModel):
    id: str = Field(min_length=1, max_length=255)
    primary_email_address_id: str | None = None
    email_addresses: list[EmailAddress] = Field(default_factory=list)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    image_url: str | None = None
    profile_image_url: str | None = None
    unsafe_metadata: dict[str, Any] | None = None
    created_at: EpochMs = None
    updated_at: EpochMs = None
    last_sign_in_at: EpochMs = None

    @property
    def primary_email(self) -> EmailAddress | None:
        """The address whose id is `primary_email_address_id`, else the first; never by
        position when the primary id is known."""
        for address in self.email_addresses:
            if address.id == self.primary_email_address_id:
                return address
        return self.email_addresses[0] if self.email_addresses else None

    @property
    def onboarding(self) -> Any | None:
        """The session-storage data the front end put into `unsafe_metadata` (DESIGN.md §4)."""
        return (self.unsafe_metadata or {}).get("onboarding")


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
    user: ClerkUser | None = None
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
    """The envelope: `{data, object, type, timestamp, instance_id, event_attributes}`."""

    type: str
    data: dict[str, Any]
    timestamp: int | float | None = None
    event_attributes: EventAttributes | None = None

    @property
    def occurred_at(self) -> dt.datetime | None:
        return None if self.timestamp is None else from_envelope_timestamp(self.timestamp)

    @property
    def http_request(self) -> HttpRequest | None:
        return None if self.event_attributes is None else self.event_attributes.http_request
