"""`cpn-sync cpn recompute` and `cpn-sync cpn show`, against committed data."""

from __future__ import annotations

import redis
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cpn_sync.cli import main
from tests.workers.cpn.conftest import add_interaction, make_user


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["cpn", *args])


def clerk_id_of(engine: Engine, user_id: int) -> str:
    with engine.connect() as connection:
        clerk_id: str = connection.execute(
            text("SELECT clerk_id FROM users WHERE id = :u"), {"u": user_id}
        ).scalar_one()
    return clerk_id


def committed_user(engine: Engine, interactions: int = 1) -> int:
    with Session(engine) as session, session.begin():
        user = make_user(session)
        for _ in range(interactions):
            add_interaction(session, user, cost="45.00", minutes=90, nuts=3)
    return user


def test_recompute_one_user_then_show_it(clean_db: Engine) -> None:
    clerk_id = clerk_id_of(clean_db, committed_user(clean_db))

    first = run("recompute", "--user", clerk_id)
    second = run("recompute", "--user", clerk_id)
    shown = run("show", clerk_id)

    assert (first.exit_code, first.stdout) == (0, "new result written\n")
    assert (second.exit_code, second.stdout) == (0, "figures unchanged, no new result\n")
    assert shown.exit_code == 0
    assert "average cost per nut    15.00" in shown.stdout
    # n = 3 nuts / 1.5 h = 2, c = 15: 10 x 2/3 x 50/65 = 200/39 = 5.128...
    assert "efficiency score        5.128" in shown.stdout
    assert "(too_few_interactions)" in shown.stdout
    assert "/share/" in shown.stdout


def test_recompute_everyone_reports_the_count(clean_db: Engine) -> None:
    for _ in range(3):
        committed_user(clean_db)

    result = run("recompute", "--all")

    assert result.exit_code == 0, result.stdout
    assert result.stdout.strip().endswith("3 users, 3 new results")


def test_unknown_user_is_a_clear_error(clean_db: Engine) -> None:
    for args in (("recompute", "--user", "user_nobody"), ("show", "user_nobody")):
        result = run(*args)
        assert result.exit_code == 1
        assert "no user with Clerk id user_nobody" in result.output


def test_user_without_result_is_said_so(clean_db: Engine) -> None:
    clerk_id = clerk_id_of(clean_db, committed_user(clean_db, interactions=0))

    result = run("show", clerk_id)

    assert (result.exit_code, result.output.strip()) == (
        1,
        "Error: no CPN result yet for this user",
    )


def test_exactly_one_of_user_or_all(clean_db: Engine) -> None:
    for args in (("recompute",), ("recompute", "--all", "--user", "user_x")):
        result = run(*args)
        assert result.exit_code == 2
        assert "exactly one of --user CLERK_ID or --all" in result.output


def test_enqueue_hands_the_user_to_the_workers(clean_db: Engine, redis_url: str) -> None:
    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()
    clerk_id = clerk_id_of(clean_db, committed_user(clean_db))

    outputs = [run("recompute", "--user", clerk_id, "--enqueue").output for _ in range(2)]

    follow = (
        "a worker runs it within 5 s (CPN_COALESCE_SECONDS); follow it with "
        "`cpn-sync cpn show CLERK_ID` or the worker log (cpn.chunk_recomputed)\n"
    )
    assert outputs == ["recompute queued\n" + follow, "a recompute is already queued\n" + follow]
    assert broker.llen("cpn") == 1
