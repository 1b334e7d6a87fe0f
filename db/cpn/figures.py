"""The figure expressions of a CPN result (DESIGN.md section 5), exact in `numeric`.

Every ratio is rounded with integer division, `div(2·a·10^s + b, 2·b) / 10^s`: round half up of
the exact rational a/b, i.e. half away from zero like PostgreSQL's `round`, for these
non-negative figures. The efficiency score 10 · n/(n+1) · 50/(50+c), with n = 60N/M nuts per hour
and c = C/N cost per nut, is 30000·N² / ((60N + M)·(50N + C)) for N nuts, M minutes and cost C,
rounded once.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    Integer,
    Numeric,
    Table,
    any_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from db.models import UserCpnResult, UserInteraction

results = typing.cast(Table, UserCpnResult.__table__)
interactions = typing.cast(Table, UserInteraction.__table__)

INT_MAX = 2**31 - 1
MONDAY_2001_01_01 = dt.date(2001, 1, 1)


def round_ratio(numerator: Any, denominator: Any, places: int) -> ColumnElement[Decimal]:
    """numerator / denominator rounded half up to `places`, exactly (both non-negative)."""
    scale = 10**places
    quotient = func.div(2 * numerator * scale + denominator, 2 * denominator)
    return quotient * literal(Decimal(1).scaleb(-places), Numeric)


def iso_weekday(day: ColumnElement[dt.date]) -> ColumnElement[int]:
    """1 = Monday ... 7 = Sunday, in integer arithmetic (2001-01-01 was a Monday): several
    times cheaper than EXTRACT(isodow), which computes a numeric, over a chunk's interactions."""
    days = day - literal(MONDAY_2001_01_01)
    return type_coerce((days % 7 + 7) % 7 + 1, Integer)


def fits(column: str, value: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether the value is representable in the column (NULL always is)."""
    kind = results.c[column].type
    if isinstance(kind, Numeric) and kind.precision is not None:
        limit = Decimal(10) ** (kind.precision - (kind.scale or 0))
        return or_(value.is_(None), value < limit)
    return or_(value.is_(None), value <= INT_MAX)


def totals_cte(ids: BindParameter[Sequence[int]]) -> CTE:
    """Per user: count, sums, period and the best-value weekday, in one pass.

    The interactions are grouped by user and ISO weekday; the totals roll up from those groups,
    and min() over (cost per nut, weekday) pairs picks the cheapest weekday (the earlier on a tie).
    """
    i = interactions.c
    weekday = iso_weekday(i.interaction_date)
    by_weekday = (
        select(
            i.user_id,
            weekday.label("weekday"),
            func.count().label("interactions"),
            func.sum(i.cost).label("cost"),
            func.sum(i.nuts).label("nuts"),
            func.sum(i.time_minutes).label("minutes"),
            func.min(i.interaction_date).label("first_date"),
            func.max(i.interaction_date).label("last_date"),
        )
        .where(i.user_id == any_(ids))
        .group_by(i.user_id, weekday)
        .cte("by_weekday")
    )
    w = by_weekday.c
    pair = array([cast(w.cost / w.nuts, Numeric), cast(w.weekday, Numeric)])
    return (
        select(
            w.user_id,
            func.sum(w.interactions).label("interactions"),
            func.sum(w.cost).label("cost"),
            func.sum(w.nuts).label("nuts"),
            func.sum(w.minutes).label("minutes"),
            func.min(w.first_date).label("first_date"),
            func.max(w.last_date).label("last_date"),
            func.count().filter(w.nuts > 0).label("weekdays_with_nuts"),
            func.min(pair, type_=ARRAY(Numeric)).filter(w.nuts > 0).label("cheapest"),
        )
        .group_by(w.user_id)
        .cte("totals")
    )


def figure_values(t: ReadOnlyColumnCollection[str, Any]) -> dict[str, ColumnElement[Any]]:
    """Every figure column of DESIGN.md section 5, exact and rounded to its column's scale."""
    count = func.coalesce(t.interactions, 0)
    cost = func.coalesce(t.cost, 0)
    nuts = func.coalesce(t.nuts, 0)
    minutes = func.coalesce(t.minutes, 0)
    score = round_ratio(30000 * nuts * nuts, (60 * nuts + minutes) * (50 * nuts + cost), 3)
    return {
        "total_interactions": count,
        "total_cost": cost,
        "total_time_hours": round_ratio(minutes, 60, 2),
        "total_nuts": nuts,
        "average_cost_per_nut": case((nuts > 0, round_ratio(cost, nuts, 2))),
        "average_cost_per_hour": case((minutes > 0, round_ratio(60 * cost, minutes, 2))),
        "average_nuts_per_hour": case((minutes > 0, round_ratio(60 * nuts, minutes, 3))),
        "overall_efficiency_score": case((nuts > 0, score), else_=0),
        "calculation_period_start": t.first_date,
        "calculation_period_end": t.last_date,
    }
