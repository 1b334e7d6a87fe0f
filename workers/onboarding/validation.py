"""The onboarding object the front end kept in session storage (DESIGN.md section 4), and the
rules its values must meet before anything is written.

Types are strict: a number must be a JSON number (never `"27"`), a count a whole number, a date
a `YYYY-MM-DD` string. Unknown keys are ignored (they stay in `original_data`). Every broken rule
is reported, each naming its field the way the front end does (`profile.firstName`,
`dataEntry[1].time`) and saying why, never quoting the value (it is personal data).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from db.forms import DataEntryData, ProfileFormData
from workers.core.errors import describe_json_error

MAX_COST = Decimal("99999999.99")  # user_interactions.cost is numeric(10,2)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Pydantic's own error types, said the way the rest of the messages are.
_REASONS = {
    "missing": "is required",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
}


def utc_today() -> dt.date:
    """The date a future-date check compares with: today in UTC, whatever the server's zone."""
    return dt.datetime.now(dt.UTC).date()


def _fail(kind: str, reason: str) -> PydanticCustomError:
    return PydanticCustomError(kind, reason)


def _whole_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail("whole_number", "must be a whole number")
    return value


def _number(value: Any) -> Decimal:
    """A JSON number as an exact decimal: `str()` of a float is its shortest form (8.5 -> 8.5)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail("number", "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail("number", "must be a finite number")
    return Decimal(str(value))


def _between(low: int, high: int, unit: str = "") -> AfterValidator:
    def check(value: Any) -> Any:
        if not low <= value <= high:
            raise _fail("range", f"must be between {low} and {high}{unit}")
        return value

    return AfterValidator(check)


def _decimal_places(places: int) -> AfterValidator:
    def check(value: Decimal) -> Decimal:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -places:
            plural = "" if places == 1 else "s"
            raise _fail("decimal_places", f"must have at most {places} decimal place{plural}")
        return value

    return AfterValidator(check)


def _cost_range(value: Decimal) -> Decimal:
    if value < 0:
        raise _fail("range", "must not be negative")
    if value > MAX_COST:
        raise _fail("range", f"must be at most {MAX_COST}")
    return value


def text_rule(max_length: int | None, *, required: bool) -> BeforeValidator:
    """Text, trimmed; an empty optional text is no text."""

    def check(value: Any) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise _fail("text", "must be text")
        text = value.strip()
        if not text:
            if required:
                raise _fail("text", "must not be empty")
            return None
        if max_length is not None and len(text) > max_length:
            raise _fail("text", f"must be at most {max_length} characters")
        return text

    return BeforeValidator(check)


def _iso_date(value: Any) -> dt.date:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise _fail("date", "must be a date written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _fail("date", "is not a calendar date") from None


def _object_or_list(value: Any) -> Any:
    """`dataEntry` is one entry or a list of them; absent or null is none."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    raise _fail("entries", "must be an object or a list of objects")


Age = Annotated[int, BeforeValidator(_whole_number), _between(18, 99)]
Rating = Annotated[Decimal, BeforeValidator(_number), _between(0, 10), _decimal_places(1)]
Cost = Annotated[Decimal, BeforeValidator(_number), AfterValidator(_cost_range), _decimal_places(2)]
Minutes = Annotated[int, BeforeValidator(_whole_number), _between(15, 1440, " minutes")]
Nuts = Annotated[int, BeforeValidator(_whole_number), _between(0, 5)]


class _FrontEndModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class OnboardingProfile(_FrontEndModel):
    """The /add-girl form."""

    first_name: Annotated[str, text_rule(100, required=True)] = Field(alias="firstName")
    age: Age | None = None
    ethnicity: Annotated[str | None, text_rule(50, required=False)] = None
    rating: Rating | None = None

    def form(self) -> ProfileFormData:
        return ProfileFormData(
            first_name=self.first_name, age=self.age, ethnicity=self.ethnicity, rating=self.rating
        )


class OnboardingEntry(_FrontEndModel):
    """One /data-entry form: an interaction, `time` in minutes."""

    date: Annotated[dt.date, BeforeValidator(_iso_date)]
    cost: Cost
    time: Minutes
    nuts: Nuts
    notes: Annotated[str | None, text_rule(None, required=False)] = None

    @field_validator("date")
    @classmethod
    def _not_in_the_future(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        today = (info.context or {}).get("today") or utc_today()
        if value > today:
            raise _fail("future_date", "must not be in the future (compared with today in UTC)")
        return value

    def form(self) -> DataEntryData:
        return DataEntryData(
            date=self.date, cost=self.cost, time=self.time, nuts=self.nuts, notes=self.notes
        )


class Onboarding(_FrontEndModel):
    """`unsafe_metadata.onboarding`, or the `sessionData` of an import line."""

    session_data_id: Annotated[str | None, text_rule(255, required=False)] = Field(
        default=None, alias="sessionDataId"
    )
    profile: OnboardingProfile | None = None
    data_entry: Annotated[list[OnboardingEntry], BeforeValidator(_object_or_list)] = Field(
        default_factory=list, alias="dataEntry"
    )

    @model_validator(mode="after")
    def _has_something_to_migrate(self) -> Onboarding:
        if self.profile is None and not self.data_entry:
            raise _fail("empty", "has neither a profile nor a dataEntry")
        return self


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidOnboarding(ValueError):  # noqa: N818 - reads as what the data is
    """The onboarding object breaks one or more rules; `errors` names every one."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(describe(errors))
        self.errors = errors


def describe(errors: list[FieldError]) -> str:
    return "; ".join(str(error) for error in errors)


# An onboarding object is four levels deep (onboarding, dataEntry, its list, an entry); deeper
# data is refused before anything walks it (hashing, validation, `original_data`), so no
# recursive encoder ever meets end users' nesting.
MAX_ONBOARDING_DEPTH = 16


@dataclass(frozen=True)
class UnreadableOnboarding:
    """Onboarding data that cannot be validated or kept as it came: a digest of its stored
    text (it stands for the session data id) and why."""

    digest: str
    reason: str


def read_onboarding(stored: str) -> Any:
    """Decode `unsafe_metadata.onboarding` from its stored JSON text; an `UnreadableOnboarding`
    when it is nested too deep or holds a number no double can hold."""
    try:
        value = orjson.loads(stored)
    except orjson.JSONDecodeError as error:
        return _unreadable(stored, describe_json_error(error))
    if _deeper_than(value, MAX_ONBOARDING_DEPTH):
        return _unreadable(stored, f"nested deeper than {MAX_ONBOARDING_DEPTH} levels")
    return value


def _unreadable(stored: str, reason: str) -> UnreadableOnboarding:
    return UnreadableOnboarding(hashlib.sha256(stored.encode()).hexdigest(), reason)


def _deeper_than(value: Any, limit: int) -> bool:
    """Without recursion: the value may be as deep as the decoder allows."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def parse_onboarding(raw: Any, today: dt.date | None = None) -> Onboarding:
    """Validate the object as received; raises `InvalidOnboarding` naming every bad field.

    `today` (default: today in UTC) is the latest date an interaction may have.
    """
    if isinstance(raw, UnreadableOnboarding):
        raise InvalidOnboarding([FieldError("onboarding", raw.reason)])
    try:
        return Onboarding.model_validate(raw, context={"today": today or utc_today()})
    except ValidationError as error:
        raise InvalidOnboarding(_field_errors(error, raw)) from None


def field_errors_of(
    error: ValidationError, name: Callable[[tuple[Any, ...]], str]
) -> list[FieldError]:
    """Pydantic's errors as `FieldError`s; `name` turns a location into a field name."""
    return [
        FieldError(name(tuple(item["loc"])), _REASONS.get(item["type"], item["msg"]))
        for item in error.errors()
    ]


def _field_errors(error: ValidationError, raw: Any) -> list[FieldError]:
    entries_listed = isinstance(raw, dict) and isinstance(raw.get("dataEntry"), list)

    def name(loc: tuple[Any, ...]) -> str:
        if not loc:
            return "onboarding"
        if loc[0] == "dataEntry" and len(loc) > 1 and not entries_listed:
            loc = ("dataEntry", *loc[2:])  # one entry sent as an object: no index
        text = ""
        for part in loc:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text.lstrip(".")

    return field_errors_of(error, name)
