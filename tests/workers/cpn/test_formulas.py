"""The figures of DESIGN.md section 5 on hand-computed cases, exact to each column's scale."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.workers.cpn.conftest import (
    BASE_URL,
    MONDAY,
    add_interaction,
    latest_of,
    make_user,
    recompute,
    results_of,
)

D = Decimal


class TestHandComputedCases:
    def test_single_15_minute_interaction(self, session: Session, user: int) -> None:
        add_interaction(session, user, cost="30.00", minutes=15, nuts=1)

        assert recompute(session, user).written == [user]

        row = latest_of(session, user)
        assert row.total_interactions == 1
        assert row.total_cost == D("30.00")
        assert row.total_time_hours == D("0.25")
        assert row.total_nuts == 1
        assert row.average_cost_per_nut == D("30.00")
        assert row.average_cost_per_hour == D("120.00")
        assert row.average_nuts_per_hour == D("4.000")
        # 10 x 4/5 x 50/80
        assert row.overall_efficiency_score == D("5.000")
        assert row.calculation_period_start == MONDAY
        assert row.calculation_period_end == MONDAY

    def test_zero_nuts_has_no_cost_per_nut_and_score_zero(
        self, session: Session, user: int
    ) -> None:
        add_interaction(session, user, cost="50.00", minutes=60, nuts=0)
        add_interaction(session, user, cost="25.00", minutes=30, nuts=0, on=MONDAY.replace(day=9))

        recompute(session, user)

        row = latest_of(session, user)
        assert (row.total_interactions, row.total_cost, row.total_nuts) == (2, D("75.00"), 0)
        assert row.total_time_hours == D("1.50")
        assert row.average_cost_per_nut is None
        assert row.average_cost_per_hour == D("50.00")
        assert row.average_nuts_per_hour == D("0.000")
        assert row.overall_efficiency_score == D("0.000")
        assert row.calculation_period_end == dt.date(2025, 1, 9)

    def test_several_interactions_use_totals_not_averages_of_averages(
        self, session: Session, user: int
    ) -> None:
        add_interaction(session, user, cost="10.00", minutes=30, nuts=1)
        add_interaction(session, user, cost="90.00", minutes=90, nuts=3)

        recompute(session, user)

        row = latest_of(session, user)
        assert row.average_cost_per_nut == D("25.00")  # 100 / 4
        assert row.average_cost_per_hour == D("50.00")  # 100 / 2 h
        assert row.average_nuts_per_hour == D("2.000")  # 4 / 2 h
        # 10 x 2/3 x 50/75 = 4.444...
        assert row.overall_efficiency_score == D("4.444")


class TestRoundingAtTheHalf:
    """PostgreSQL rounds numeric half away from zero; these figures are exact halves."""

    def test_cost_per_nut_half_rounds_up(self, session: Session, user: int) -> None:
        add_interaction(session, user, cost="0.25", minutes=60, nuts=2)  # 0.125 per nut

        recompute(session, user)

        row = latest_of(session, user)
        assert row.average_cost_per_nut == D("0.13")
        assert row.average_cost_per_hour == D("0.25")

    def test_cost_per_hour_half_rounds_up(self, session: Session, user: int) -> None:
        add_interaction(session, user, cost="0.02", minutes=240, nuts=0)  # 0.005 per hour

        recompute(session, user)

        assert latest_of(session, user).average_cost_per_hour == D("0.01")

    def test_efficiency_score_half_rounds_up(self, session: Session, user: int) -> None:
        # n = 4 nuts/h, c = 1.20: 10 x 4/5 x 50/51.2 = 7.8125 exactly
        add_interaction(session, user, cost="1.20", minutes=15, nuts=1)

        recompute(session, user)

        assert latest_of(session, user).overall_efficiency_score == D("7.813")


class TestColumnLimits:
    def _add_many(self, session: Session, user_id: int, count: int, cost: str) -> None:
        session.execute(
            text(
                "INSERT INTO user_interactions "
                "(user_id, clerk_id, interaction_date, cost, time_minutes, nuts) "
                "SELECT u.id, u.clerk_id, DATE '2025-01-06', :cost, 1440, 5 "
                "FROM users u, generate_series(1, :count) WHERE u.id = :user_id"
            ),
            {"user_id": user_id, "count": count, "cost": D(cost)},
        )

    def test_largest_total_cost_that_fits_is_written_exactly(
        self, session: Session, user: int
    ) -> None:
        self._add_many(session, user, 100, "99999999.99")

        recompute(session, user)

        row = latest_of(session, user)
        assert row.total_cost == D("9999999999.00")  # numeric(12,2) holds < 10^10
        assert row.total_time_hours == D("2400.00")
        assert row.average_cost_per_nut == D("20000000.00")  # 19,999,999.998
        assert row.average_cost_per_hour == D("4166666.67")  # 4,166,666.66625
        assert row.average_nuts_per_hour == D("0.208")
        assert row.overall_efficiency_score == D("0.000")

    def test_total_cost_beyond_the_column_writes_nothing_for_that_user_only(
        self, session: Session, user: int
    ) -> None:
        self._add_many(session, user, 100, "99999999.99")
        recompute(session, user)
        other = make_user(session)
        add_interaction(session, other, cost="10.00", minutes=60, nuts=1)
        self._add_many(session, user, 1, "99999999.99")  # total 10,099,999,998.99

        outcome = recompute(session, user, other)

        assert outcome.out_of_range == [user]
        assert outcome.written == [other]
        assert [r.total_cost for r in results_of(session, user)] == [D("9999999999.00")]
        pending = session.execute(
            text("SELECT user_id FROM user_interaction_changes WHERE user_id IN (:a, :b)"),
            {"a": user, "b": other},
        ).scalars()
        assert list(pending) == [user], "the failed user's change stays pending"

    def test_cost_per_nut_beyond_its_column_is_reported(self, session: Session, user: int) -> None:
        # Each interaction fits its own columns, but 100,000,000.01 for one nut does not fit
        # numeric(10,2) (< 10^8).
        add_interaction(session, user, cost="99999999.99", minutes=1440, nuts=0)
        add_interaction(session, user, cost="0.02", minutes=1440, nuts=1)

        outcome = recompute(session, user)

        assert outcome.out_of_range == [user]
        assert outcome.written == []
        assert results_of(session, user) == []


def _half_up(value: Fraction, places: int) -> Decimal:
    with localcontext(prec=80):
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


interaction_values = st.tuples(
    st.integers(min_value=0, max_value=500_000).map(lambda cents: Decimal(cents).scaleb(-2)),
    st.integers(min_value=15, max_value=1440),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=400),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(interaction_values, min_size=1, max_size=12))
def test_matches_the_design_formulas_on_exact_fractions(
    session: Session, entries: list[tuple[Decimal, int, int, int]]
) -> None:
    savepoint = session.begin_nested()  # each example leaves nothing behind
    try:
        _check_against_fractions(session, entries)
    finally:
        savepoint.rollback()


def _check_against_fractions(
    session: Session, entries: list[tuple[Decimal, int, int, int]]
) -> None:
    user = make_user(session)
    for cost, minutes, nuts, days_ago in entries:
        add_interaction(
            session, user, cost=cost, minutes=minutes, nuts=nuts,
            on=MONDAY - dt.timedelta(days=days_ago),
        )  # fmt: skip

    recompute(session, user)

    total_cost = sum((Fraction(c) for c, _, _, _ in entries), Fraction(0))
    minutes = sum(m for _, m, _, _ in entries)
    nuts = sum(n for _, _, n, _ in entries)
    hours = Fraction(minutes, 60)
    row = latest_of(session, user)
    assert row.total_interactions == len(entries)
    assert row.total_cost == _half_up(total_cost, 2)
    assert row.total_time_hours == _half_up(hours, 2)
    assert row.total_nuts == nuts
    assert row.average_cost_per_hour == _half_up(total_cost / hours, 2)
    assert row.average_nuts_per_hour == _half_up(nuts / hours, 3)
    if nuts:
        n, c = nuts / hours, total_cost / nuts
        assert row.average_cost_per_nut == _half_up(c, 2)
        assert row.overall_efficiency_score == _half_up(10 * n / (n + 1) * 50 / (50 + c), 3)
    else:
        assert row.average_cost_per_nut is None
        assert row.overall_efficiency_score == 0
    days = [MONDAY - dt.timedelta(days=d) for _, _, _, d in entries]
    assert (row.calculation_period_start, row.calculation_period_end) == (min(days), max(days))
    assert row.shareable_graphic_url == f"{BASE_URL}/share/{row.share_token}"
