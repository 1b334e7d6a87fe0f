"""CPN results (DESIGN.md section 5): one set-based statement per chunk of users.

`recompute_users` locks the chunk's users, then runs ONE statement that aggregates their
interactions, computes every column in exact `numeric` arithmetic, adds the recommendations,
and inserts a row only for users whose figures differ from their latest row. The same statement
consumes the users' pending change stamps (`user_interaction_changes`). Nothing per interaction
or per user happens in Python, so memory depends on the chunk size only.

The figure expressions, exact in `numeric`, are in `db.cpn.figures`.

A user with no interactions gets no row, unless they had one: then a zero row (averages NULL,
score 0, no period) records that their interactions were deleted.

Figures that do not fit their column (e.g. a total cost of 10^10 or more in `numeric(12,2)`)
are never written or truncated: that user keeps their previous row and their pending change, the
rest of the chunk is written, and the caller gets their ids to raise `CpnFiguresOutOfRangeError`.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.orm import Session

from db.cpn.figures import figure_values, fits, results, totals_cte
from db.cpn.recommendations import Facts, Thresholds, recommendations
from db.cpn.share import new_share_token
from db.models import User, UserInteractionChange

users = typing.cast(Table, User.__table__)
changes = typing.cast(Table, UserInteractionChange.__table__)

# The columns whose values make up "the figures": a new row only when one of them differs.
FIGURE_COLUMNS = (
    "total_interactions",
    "total_cost",
    "total_time_hours",
    "total_nuts",
    "average_cost_per_nut",
    "average_cost_per_hour",
    "average_nuts_per_hour",
    "overall_efficiency_score",
    "calculation_period_start",
    "calculation_period_end",
    "recommendations",
)
# Room for the (user, weekday) hash aggregate of a chunk; PostgreSQL cannot estimate that a
# weekday has 7 values and would otherwise sort the chunk's interactions on disk.
CHUNK_WORK_MEM = "32MB"


class CpnError(Exception):
    """Base of the CPN errors."""


class CpnFiguresOutOfRangeError(CpnError):
    """Some users' figures exceed their columns; nothing was written for them."""

    def __init__(self, user_ids: Sequence[int]) -> None:
        self.user_ids = list(user_ids)
        super().__init__(
            f"CPN figures exceed the columns of user_cpn_results for user ids {self.user_ids}; "
            "their previous results are kept"
        )


@dataclass(frozen=True)
class RecomputeOutcome:
    written: list[int]
    out_of_range: list[int]


@lru_cache(maxsize=8)
def _statement(limits: Thresholds, public_base_url: str) -> Select[Any]:
    """Built once per (thresholds, base URL); SQLAlchemy caches its compiled form."""
    ids = bindparam("user_ids", type_=ARRAY(Integer))
    chunk = (
        select(users.c.id.label("user_id"), users.c.clerk_id)
        .where(users.c.id == any_(ids))
        .cte("chunk")
    )
    totals = totals_cte(ids)
    # Each user's latest row, one index probe per user (idx_user_cpn_results_user_latest),
    # whatever the length of the history.
    latest = (
        select(results.c.id, *(results.c[name] for name in FIGURE_COLUMNS))
        .where(results.c.user_id == chunk.c.user_id)
        .order_by(results.c.id.desc())
        .limit(1)
        .lateral("latest")
    )
    t = totals.c
    values = figure_values(t)
    figures = (
        select(
            chunk.c.user_id,
            chunk.c.clerk_id,
            *(value.label(name) for name, value in values.items()),
            t.weekdays_with_nuts,
            cast(t.cheapest[2], Integer).label("best_weekday"),
            *(latest.c[name].label(f"previous_{name}") for name in FIGURE_COLUMNS),
        )
        .select_from(chunk)
        .outerjoin(totals, t.user_id == chunk.c.user_id)
        .outerjoin(latest, true())
        # No interactions and no earlier row: nothing to record.
        .where(or_(t.user_id.is_not(None), latest.c.id.is_not(None)))
        .cte("figures")
        .prefix_with("MATERIALIZED")  # computed once; the checks below read the results
    )
    f = figures.c
    facts = Facts(
        total_interactions=f.total_interactions,
        average_cost_per_nut=f.average_cost_per_nut,
        average_nuts_per_hour=f.average_nuts_per_hour,
        best_weekday=f.best_weekday,
        weekdays_with_nuts=f.weekdays_with_nuts,
    )
    numeric_columns = [name for name in values if not name.startswith("calculation_period")]
    advised = select(
        figures,
        recommendations(facts, limits).label("recommendations"),
        and_(*(fits(name, f[name]) for name in numeric_columns)).label("fits"),
    ).cte("advised")
    a = advised.c
    fresh = (
        select(advised, func.row_number().over(order_by=a.user_id).label("n"))
        .where(
            a.fits,
            tuple_(*(a[name] for name in FIGURE_COLUMNS)).is_distinct_from(
                tuple_(*(a[f"previous_{name}"] for name in FIGURE_COLUMNS))
            ),
        )
        .cte("fresh")
    )
    # One fresh token per written row, generated by `secrets` in Python (numbered 1..n).
    tokens = (
        func.unnest(bindparam("tokens", type_=ARRAY(TEXT)))
        .table_valued("token", with_ordinality="n")
        .render_derived()
    )
    inserted = (
        insert(results)
        .from_select(
            ["user_id", "clerk_id", *FIGURE_COLUMNS, "share_token", "shareable_graphic_url"],
            select(
                fresh.c.user_id,
                fresh.c.clerk_id,
                *(fresh.c[name] for name in FIGURE_COLUMNS),
                tokens.c.token,
                literal(public_base_url.rstrip("/") + "/share/") + tokens.c.token,
            ).join_from(fresh, tokens, tokens.c.n == fresh.c.n),
        )
        .returning(results.c.user_id)
        .cte("inserted")
    )
    # The change stamps this statement saw; one replaced meanwhile (new change_id) survives.
    seen = (
        select(changes.c.user_id, changes.c.change_id)
        .where(changes.c.user_id == any_(ids))
        .cte("seen")
    )
    consumed = (
        delete(changes)
        .where(
            changes.c.user_id == seen.c.user_id,
            changes.c.change_id == seen.c.change_id,
            changes.c.user_id.not_in(select(a.user_id).where(~a.fits)),
        )
        .returning(changes.c.user_id)
        .cte("consumed")
    )
    return select(
        select(func.array_agg(inserted.c.user_id)).scalar_subquery().label("written"),
        select(func.array_agg(a.user_id)).where(~a.fits).scalar_subquery().label("out_of_range"),
        select(func.count()).select_from(consumed).scalar_subquery().label("consumed"),
    )


def lock_user_rows(session: Session, user_ids: Sequence[int]) -> None:
    """Serialize recomputes of the same users (a second one then sees the first one's row).

    FOR NO KEY UPDATE does not conflict with the FOR KEY SHARE that inserting an interaction
    takes, so the app's writes never wait for a recompute.
    """
    session.execute(
        select(users.c.id)
        .where(users.c.id == any_(bindparam("user_ids", type_=ARRAY(Integer))))
        .order_by(users.c.id)
        .with_for_update(key_share=True),
        {"user_ids": list(user_ids)},
    )


def recompute_users(
    session: Session, user_ids: Sequence[int], *, limits: Thresholds, public_base_url: str
) -> RecomputeOutcome:
    """Recompute the given users' results inside the caller's transaction (never commits).

    Holds the users' row locks and a larger `work_mem` (SET LOCAL) until that transaction ends.
    """
    if not user_ids:
        return RecomputeOutcome(written=[], out_of_range=[])
    ids = sorted(set(user_ids))
    lock_user_rows(session, ids)
    session.execute(select(func.set_config("work_mem", CHUNK_WORK_MEM, True)))
    row = session.execute(
        _statement(limits, public_base_url),
        {"user_ids": ids, "tokens": [new_share_token() for _ in ids]},
    ).one()
    return RecomputeOutcome(
        written=sorted(row.written or []), out_of_range=sorted(row.out_of_range or [])
    )
