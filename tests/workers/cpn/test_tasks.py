"""The CPN tasks across processes: coalescing, fan-out and the scheduled jobs' locks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cpn_sync.task_contract import CPN_RECOMPUTE_ALL, CPN_RECOMPUTE_CHUNK, CPN_SCAN_DIRTY
from db.cpn.queries import user_id_chunks, user_id_pages
from db.cpn.recommendations import Thresholds
from tests.worker_process import WorkerProcess
from tests.workers.conftest import take_queued
from tests.workers.cpn.conftest import BASE_URL, add_interaction, make_user, results_of
from workers.core.schedule import run_scheduled
from workers.cpn import jobs as cpn_jobs
from workers.cpn.requests import clear_request, request_key, request_user_recompute
from workers.cpn.tasks import recompute_all, scan_dirty

HOLD_JOB_LOCK = text("SELECT pg_advisory_xact_lock(2, hashtext(:name))")
OPTIONS = cpn_jobs.CpnOptions(limits=Thresholds(), public_base_url=BASE_URL, chunk_size=3)


def wait_for(condition: Callable[[], bool], timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")


def row_counts(engine: Engine, user_ids: list[int]) -> dict[int, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT u.id, count(r.id) FROM users u LEFT JOIN user_cpn_results r "
                "ON r.user_id = u.id WHERE u.id = ANY(:ids) GROUP BY u.id"
            ),
            {"ids": user_ids},
        )
        return {user_id: count for user_id, count in rows}


def committed_users(engine: Engine, count: int, *, with_interactions: bool = True) -> list[int]:
    with Session(engine) as session, session.begin():
        users = [make_user(session) for _ in range(count)]
        if with_interactions:
            for user in users:
                add_interaction(session, user, cost="12.00", minutes=45, nuts=1)
    return users


@pytest.fixture
def broker(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return client


class TestCoalescing:
    def test_a_burst_of_requests_queues_one_message(self, broker: redis.Redis) -> None:
        from workers.app import app

        sent = [
            request_user_recompute(7, client=broker, celery_app=app, window_seconds=30)
            for _ in range(10)
        ]

        assert sent == [True] + [False] * 9
        assert broker.llen("cpn") == 1
        assert 30 < broker.ttl(request_key(7)) <= 90

    def test_a_request_after_the_run_started_queues_another(self, broker: redis.Redis) -> None:
        from workers.app import app

        assert request_user_recompute(7, client=broker, celery_app=app, window_seconds=30)
        clear_request(7, client=broker)  # what the run does first

        assert request_user_recompute(7, client=broker, celery_app=app, window_seconds=30)
        assert broker.llen("cpn") == 2

    @pytest.mark.slow
    def test_one_run_sees_every_change_of_the_burst(
        self, clean_db: Engine, broker: redis.Redis
    ) -> None:
        from workers.app import app

        [user] = committed_users(clean_db, 1)
        cpn_jobs.scan_dirty(clean_db, OPTIONS)
        sent = []
        for cost in ("1.00", "2.00", "3.00"):
            with Session(clean_db) as session, session.begin():
                add_interaction(session, user, cost=cost, minutes=15, nuts=1)
            sent.append(
                request_user_recompute(user, client=broker, celery_app=app, window_seconds=1)
            )
        assert sent == [True, False, False]

        with WorkerProcess(queues="cpn") as worker:
            wait_for(lambda: row_counts(clean_db, [user])[user] == 2, what="the coalesced run")
            wait_for(lambda: bool(worker.events("cpn.chunk_recomputed")), what="the task's end")
            assert [
                (line["users"], line["written"]) for line in worker.events("cpn.chunk_recomputed")
            ] == [(1, 1)]  # one run, for one user
        with Session(clean_db) as session:
            latest = results_of(session, user)[-1]
        assert latest.total_interactions == 4
        assert broker.exists(request_key(user)) == 0


class TestFanOut:
    @pytest.mark.parametrize("pages_of", [user_id_pages, user_id_chunks])
    def test_pages_cover_every_user_id_exactly_once(
        self, clean_db: Engine, pages_of: Callable[[Engine, int], Iterator[list[int]]]
    ) -> None:
        users = committed_users(clean_db, 10, with_interactions=False)

        pages = list(pages_of(clean_db, 3))

        assert [len(page) for page in pages] == [3, 3, 3, 1]
        assert [user for page in pages for user in page] == sorted(users)

    @pytest.mark.slow
    def test_recompute_all_through_a_worker_writes_each_user_once(
        self, clean_db: Engine, broker: redis.Redis
    ) -> None:
        from workers.app import app

        users = committed_users(clean_db, 25)
        idle = committed_users(clean_db, 2, with_interactions=False)

        with WorkerProcess(queues="cpn", extra_env={"CPN_CHUNK_SIZE": "4"}) as worker:
            app.send_task(CPN_RECOMPUTE_ALL)
            wait_for(
                lambda: len(worker.events("cpn.chunk_recomputed")) == 7,
                what="7 chunks of at most 4 of the 27 users to finish",
            )
            [fan_out] = [
                line for line in worker.events("cpn.job_done") if line["job"] == "recompute_all"
            ]
            assert (fan_out["chunks"], fan_out["users"]) == (7, 27)

        counts = row_counts(clean_db, users + idle)
        assert {user: counts[user] for user in users} == dict.fromkeys(users, 1)
        assert {user: counts[user] for user in idle} == dict.fromkeys(idle, 0)
        assert [line for line in worker.json_lines() if line.get("level") == "error"] == []


class TestScheduledJobsGuard:
    """The CPN jobs run under the one schedule guard (`workers.core.schedule`): a copy that
    finds the job's lock held skips and changes nothing."""

    def test_a_held_lock_makes_the_scan_skip_and_change_nothing(self, clean_db: Engine) -> None:
        users = committed_users(clean_db, 2)

        with clean_db.connect() as other:
            other.execute(HOLD_JOB_LOCK, {"name": CPN_SCAN_DIRTY})
            assert run_scheduled(CPN_SCAN_DIRTY, 300, scan_dirty) is None
            assert row_counts(clean_db, users) == dict.fromkeys(users, 0)
            other.rollback()
        ran = run_scheduled(CPN_SCAN_DIRTY, 300, scan_dirty)

        assert ran is not None
        assert ran["written"] == 2
        assert row_counts(clean_db, users) == dict.fromkeys(users, 1)

    def test_a_held_lock_makes_recompute_all_enqueue_nothing(
        self, clean_db: Engine, redis_url: str
    ) -> None:
        committed_users(clean_db, 2)

        with clean_db.connect() as other:
            other.execute(HOLD_JOB_LOCK, {"name": CPN_RECOMPUTE_ALL})
            assert run_scheduled(CPN_RECOMPUTE_ALL, 3600, recompute_all) is None
            assert take_queued(redis_url, "cpn") == []
            other.rollback()

        ran = run_scheduled(CPN_RECOMPUTE_ALL, 3600, recompute_all)
        assert ran is not None
        assert (ran["chunks"], ran["users"]) == (1, 2)
        assert [name for name, _args in take_queued(redis_url, "cpn")] == [CPN_RECOMPUTE_CHUNK]


def test_beat_entries_run_registered_tasks_on_the_cpn_queue() -> None:
    from cpn_sync.settings import get_settings
    from workers.app import app, beat_schedule

    schedule = beat_schedule(get_settings())
    cpn_schedule = {name: entry for name, entry in schedule.items() if name.startswith("cpn.")}
    assert set(cpn_schedule) == {CPN_SCAN_DIRTY, CPN_RECOMPUTE_ALL, "cpn.canary"}

    for entry in cpn_schedule.values():
        assert entry["task"] in app.tasks
        assert app.amqp.router.route({}, entry["task"], (), {})["queue"].name == "cpn"
        assert entry["options"]["expires"] <= 3600
    assert cpn_schedule["cpn.scan_dirty"]["schedule"] == 300.0
