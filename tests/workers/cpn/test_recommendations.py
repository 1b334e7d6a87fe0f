"""Each recommendation rule at its boundary, evaluated by PostgreSQL as the recompute does."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import BigInteger, Integer, Numeric, cast, literal, select, text
from sqlalchemy.orm import Session

from db.cpn.recommendations import (
    Facts,
    Rule,
    Thresholds,
    best_value_weekday,
    high_cost_per_nut,
    low_nuts_per_hour,
    too_few_interactions,
)
from tests.workers.cpn.conftest import MONDAY, add_interaction, latest_of, recompute

TUESDAY = MONDAY + dt.timedelta(days=1)


def evaluate(
    session: Session, rule: Rule, limits: Thresholds | None = None, **figures: Any
) -> list[dict[str, str]]:
    """The rule's output for one set of figures (unnamed figures are unremarkable ones)."""
    values: dict[str, Any] = {
        "total_interactions": 10,
        "average_cost_per_nut": Decimal("10.00"),
        "average_nuts_per_hour": Decimal("1.000"),
        "best_weekday": None,
        "weekdays_with_nuts": 0,
        **figures,
    }
    facts = Facts(
        total_interactions=cast(literal(values["total_interactions"]), Numeric),
        average_cost_per_nut=cast(literal(values["average_cost_per_nut"]), Numeric(10, 2)),
        average_nuts_per_hour=cast(literal(values["average_nuts_per_hour"]), Numeric(6, 3)),
        best_weekday=cast(literal(values["best_weekday"]), Integer),
        weekdays_with_nuts=cast(literal(values["weekdays_with_nuts"]), BigInteger),
    )
    result: list[dict[str, str]] = session.execute(
        select(rule(facts, limits or Thresholds()))
    ).scalar_one()
    return result


def codes(output: list[dict[str, str]]) -> list[str]:
    return [item["code"] for item in output]


class TestTooFewInteractions:
    @pytest.mark.parametrize(("count", "fires"), [(0, True), (2, True), (3, False), (4, False)])
    def test_fewer_than_three(self, session: Session, count: int, fires: bool) -> None:
        output = evaluate(session, too_few_interactions, total_interactions=count)
        assert codes(output) == (["too_few_interactions"] if fires else [])

    def test_threshold_is_configurable(self, session: Session) -> None:
        limits = Thresholds(min_interactions=5)
        assert evaluate(session, too_few_interactions, limits, total_interactions=4)
        assert not evaluate(session, too_few_interactions, limits, total_interactions=5)


class TestHighCostPerNut:
    @pytest.mark.parametrize(
        ("cost_per_nut", "fires"),
        [(Decimal("99.99"), False), (Decimal("100.00"), False), (Decimal("100.01"), True)],
    )
    def test_above_threshold_only(
        self, session: Session, cost_per_nut: Decimal, fires: bool
    ) -> None:
        output = evaluate(session, high_cost_per_nut, average_cost_per_nut=cost_per_nut)
        assert codes(output) == (["high_cost_per_nut"] if fires else [])

    def test_no_nuts_means_no_cost_per_nut_to_judge(self, session: Session) -> None:
        assert evaluate(session, high_cost_per_nut, average_cost_per_nut=None) == []

    def test_message_names_the_configured_threshold(self, session: Session) -> None:
        limits = Thresholds(cost_per_nut=Decimal("25.50"))
        [item] = evaluate(session, high_cost_per_nut, limits, average_cost_per_nut=Decimal("25.51"))
        assert item["message"] == "The average cost per nut is above 25.5."


class TestLowNutsPerHour:
    @pytest.mark.parametrize(
        ("per_hour", "fires"),
        [(Decimal("0.499"), True), (Decimal("0.500"), False), (Decimal("0.501"), False)],
    )
    def test_below_threshold_only(self, session: Session, per_hour: Decimal, fires: bool) -> None:
        output = evaluate(session, low_nuts_per_hour, average_nuts_per_hour=per_hour)
        assert codes(output) == (["low_nuts_per_hour"] if fires else [])

    def test_threshold_is_configurable(self, session: Session) -> None:
        limits = Thresholds(nuts_per_hour=Decimal("2"))
        [item] = evaluate(
            session, low_nuts_per_hour, limits, average_nuts_per_hour=Decimal("1.999")
        )
        assert item["message"] == "The average is below 2 nuts per hour."


class TestBestValueWeekday:
    @pytest.mark.parametrize(
        ("count", "weekdays", "fires"),
        [(6, 2, False), (7, 2, True), (7, 1, False), (30, 7, True)],
    )
    def test_needs_enough_interactions_on_two_weekdays(
        self, session: Session, count: int, weekdays: int, fires: bool
    ) -> None:
        output = evaluate(
            session,
            best_value_weekday,
            total_interactions=count,
            weekdays_with_nuts=weekdays,
            best_weekday=2,
        )
        assert output == (
            [
                {
                    "code": "best_value_weekday",
                    "message": "The lowest cost per nut so far was on Tuesdays.",
                }
            ]
            if fires
            else []
        )

    def test_weekday_comes_from_the_interactions(self, session: Session, user: int) -> None:
        for _ in range(4):
            add_interaction(session, user, cost="40.00", minutes=60, nuts=2, on=MONDAY)
        for _ in range(3):
            add_interaction(session, user, cost="30.00", minutes=60, nuts=2, on=TUESDAY)
        add_interaction(
            session, user, cost="1.00", minutes=60, nuts=0, on=TUESDAY + dt.timedelta(days=1)
        )

        recompute(session, user)

        advice = latest_of(session, user).recommendations
        assert {
            "code": "best_value_weekday",
            "message": "The lowest cost per nut so far was on Tuesdays.",
        } in advice

    def test_a_tie_names_the_earlier_weekday(self, session: Session, user: int) -> None:
        for day in (TUESDAY, MONDAY) * 4:
            add_interaction(session, user, cost="30.00", minutes=60, nuts=3, on=day)

        recompute(session, user)

        [item] = [
            r for r in latest_of(session, user).recommendations if r["code"] == "best_value_weekday"
        ]
        assert item["message"].endswith("on Mondays.")


class TestInAResult:
    def test_rules_appear_in_documented_order(self, session: Session, user: int) -> None:
        add_interaction(session, user, cost="500.00", minutes=600, nuts=1)  # 0.1 nuts/h

        recompute(session, user)

        assert codes(latest_of(session, user).recommendations) == [
            "too_few_interactions",
            "high_cost_per_nut",
            "low_nuts_per_hour",
        ]

    def test_no_personal_data_in_messages(self, session: Session, user: int) -> None:
        add_interaction(session, user, cost="500.00", minutes=600, nuts=1)
        recompute(session, user)

        stored = session.execute(
            text("SELECT recommendations::text FROM user_cpn_results WHERE user_id = :u"),
            {"u": user},
        ).scalar_one()
        clerk_id, email = session.execute(
            text("SELECT clerk_id, email FROM users WHERE id = :u"), {"u": user}
        ).one()
        for secret in (clerk_id, email, "private note", str(user)):
            assert secret not in stored


def test_iso_weekday_in_integer_arithmetic_matches_the_calendar(session: Session) -> None:
    from db.cpn.figures import iso_weekday

    days = [dt.date(1999, 12, 25) + dt.timedelta(days=n * 37) for n in range(300)]
    computed = session.execute(select(*(iso_weekday(literal(day)) for day in days))).one()
    assert list(computed) == [day.isoweekday() for day in days]
