"""What the app's two forms submit (the seed's `ProfileFormData` and `DataEntryData`).

These models check shape and representability only (types, text lengths, 32-bit integers): the
rules of the data (age 18-99, at most 5 nuts, ...) are the database's CHECK constraints, and
`db.queries` turns their violations into `InvalidField` errors.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Int4 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class ProfileFormData(BaseModel):
    """The /add-girl onboarding form; `firstName` as the browser sends it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    first_name: str = Field(alias="firstName", min_length=1, max_length=100)
    age: Int4 | None = None
    ethnicity: str | None = Field(default=None, max_length=50)
    rating: Decimal | None = Field(default=None, allow_inf_nan=False)


class DataEntryData(BaseModel):
    """The /data-entry form: one interaction, `time` in minutes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    date: dt.date
    cost: Decimal = Field(allow_inf_nan=False)
    time: Int4
    nuts: Int4
    notes: str | None = None
