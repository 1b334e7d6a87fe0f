"""The recommendation rules of a CPN result (README "CPN results" lists them).

Each rule is a small pure function from the figures (as SQL expressions) and the thresholds to a
JSON array holding zero or one `{"code", "message"}`. The rules are Python, but they evaluate
inside the one statement that computes a chunk of results (db/cpn.py): that keeps the recompute
set-based and lets the "has anything changed" comparison include the recommendations, so a
changed threshold or best weekday yields a new row like any changed figure. Tests evaluate each
rule on literal figures in PostgreSQL, at its boundary values.

Messages are neutral and name no person; they compare the rounded figures the user sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from typing import Any

from sqlalchemy import ColumnElement, Text, case, cast, func, literal, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Thresholds:
    """The configurable limits the rules compare against (settings `CPN_*`)."""

    min_interactions: int = 3
    cost_per_nut: Decimal = Decimal("100.00")
    nuts_per_hour: Decimal = Decimal("0.500")
    weekday_min_interactions: int = 7


@dataclass(frozen=True)
class Facts:
    """What a rule may look at: the rounded figures of one result, plus the weekday aggregate.

    `best_weekday` is the ISO weekday (1 = Monday) with the lowest cost per nut, NULL when no
    weekday has nuts; `weekdays_with_nuts` counts the weekdays that have any.
    """

    total_interactions: ColumnElement[Any]
    average_cost_per_nut: ColumnElement[Any]
    average_nuts_per_hour: ColumnElement[Any]
    best_weekday: ColumnElement[Any]
    weekdays_with_nuts: ColumnElement[Any]


Rule = Callable[[Facts, Thresholds], ColumnElement[Any]]

_NONE = func.jsonb_build_array(type_=JSONB)


def _text(value: str) -> ColumnElement[str]:
    return cast(literal(value), Text)


def _recommend(
    condition: ColumnElement[bool], code: str, message: ColumnElement[str]
) -> ColumnElement[Any]:
    """`[{"code", "message"}]` when the condition holds, `[]` when it is false or NULL."""
    one = func.jsonb_build_array(
        func.jsonb_build_object(_text("code"), _text(code), _text("message"), message)
    )
    return type_coerce(case((condition, one), else_=_NONE), JSONB)


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}"


def too_few_interactions(facts: Facts, limits: Thresholds) -> ColumnElement[Any]:
    return _recommend(
        facts.total_interactions < limits.min_interactions,
        "too_few_interactions",
        _text(
            f"Fewer than {limits.min_interactions} interactions are recorded, "
            "so these figures are not reliable yet."
        ),
    )


def high_cost_per_nut(facts: Facts, limits: Thresholds) -> ColumnElement[Any]:
    return _recommend(
        facts.average_cost_per_nut > limits.cost_per_nut,
        "high_cost_per_nut",
        _text(f"The average cost per nut is above {_number(limits.cost_per_nut)}."),
    )


def low_nuts_per_hour(facts: Facts, limits: Thresholds) -> ColumnElement[Any]:
    return _recommend(
        facts.average_nuts_per_hour < limits.nuts_per_hour,
        "low_nuts_per_hour",
        _text(f"The average is below {_number(limits.nuts_per_hour)} nuts per hour."),
    )


def best_value_weekday(facts: Facts, limits: Thresholds) -> ColumnElement[Any]:
    name = case(
        {number: _text(day) for number, day in enumerate(WEEKDAY_NAMES, start=1)},
        value=facts.best_weekday,
    )
    return _recommend(
        (facts.total_interactions >= limits.weekday_min_interactions)
        & (facts.weekdays_with_nuts >= 2),
        "best_value_weekday",
        _text("The lowest cost per nut so far was on ") + name + _text("s."),
    )


RULES: tuple[Rule, ...] = (
    too_few_interactions,
    high_cost_per_nut,
    low_nuts_per_hour,
    best_value_weekday,
)


def recommendations(facts: Facts, limits: Thresholds) -> ColumnElement[Any]:
    """Every rule's outcome, concatenated in the order of `RULES` (a JSONB array)."""
    arrays = [rule(facts, limits) for rule in RULES]
    combined = reduce(lambda left, right: left.op("||")(right), arrays)
    return type_coerce(combined, JSONB)
