"""The migrated schema is the seed's schema, but for the differences listed here.

One database gets the seed document's SQL blocks, another the Alembic head; both are read back
through the catalogs. Every difference must be in ALLOWED_DIFFERENCES, with the reason that the
migration's docstring gives, and every entry there must still occur: the list stays honest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import pytest

from cpn_sync.settings import libpq_url
from tests.db import catalog
from tests.db.seed_sql import SEED_TABLES, schema_blocks
from tests.services import TestServers

REDUNDANT_INDEX = (
    "0001: the seed indexes this column twice (a UNIQUE and a plain index); "
    "the unique index alone serves both"
)
DUPLICATE_CHECK = (
    "0001: an anonymous column CHECK that repeats a named one; it exists once, under the "
    "seed's name (valid_age, valid_rating, valid_cost, valid_time, valid_nuts)"
)
UNIQUE_SESSION_ID = "0001: user_sessions.session_id is unique, sessions are upserted by it"
SET_NULL_MIGRATIONS = (
    "0001: data_migrations.user_id is ON DELETE SET NULL, deleting a user must not fail on it"
)
SHARE_TOKEN = (
    "0004: user_cpn_results.share_token, the unguessable token of each result's share link (unique)"
)
LATEST_RESULT_INDEX = (
    "0004: idx_user_cpn_results_user_latest (user_id, id) finds each user's latest result in "
    "one lookup as the history grows"
)
COMPLETED_SESSION_ONCE = (
    "0005: a session's onboarding data completes at most once per user; concurrent deliveries "
    "cannot both complete"
)
_COMPLETED_SESSION_INDEX = (
    "(clerk_id, session_data_id) WHERE (((migration_type)::text = 'session_to_user'::text) "
    "AND ((status)::text = 'completed'::text))"
)

ALLOWED_DIFFERENCES: dict[str, str] = {
    "users index idx_users_clerk_id: only in seed (index USING btree (clerk_id))": (
        REDUNDANT_INDEX
    ),
    "users coverage non-unique (clerk_id): only in seed": REDUNDANT_INDEX,
    "users index idx_users_email: only in seed (index USING btree (email))": REDUNDANT_INDEX,
    "users coverage non-unique (email): only in seed": REDUNDANT_INDEX,
    "user_profiles index idx_user_profiles_user_id: only in seed (index USING btree (user_id))": (
        REDUNDANT_INDEX
    ),
    "user_profiles coverage non-unique (user_id): only in seed": REDUNDANT_INDEX,
    "user_profiles check user_profiles_age_check: only in seed "
    "(CHECK (((age >= 18) AND (age <= 99))))": DUPLICATE_CHECK,
    "user_profiles check user_profiles_rating_check: only in seed "
    "(CHECK (((rating >= (0)::numeric) AND (rating <= (10)::numeric))))": DUPLICATE_CHECK,
    "user_interactions check user_interactions_cost_check: only in seed "
    "(CHECK ((cost >= (0)::numeric)))": DUPLICATE_CHECK,
    "user_interactions check user_interactions_time_minutes_check: only in seed "
    "(CHECK (((time_minutes >= 15) AND (time_minutes <= 1440))))": DUPLICATE_CHECK,
    "user_interactions check user_interactions_nuts_check: only in seed "
    "(CHECK (((nuts >= 0) AND (nuts <= 5))))": DUPLICATE_CHECK,
    "user_sessions index idx_user_sessions_session_id: "
    "seed 'index USING btree (session_id)' != head 'unique index USING btree (session_id)'": (
        UNIQUE_SESSION_ID
    ),
    "user_sessions coverage non-unique (session_id): only in seed": UNIQUE_SESSION_ID,
    "user_sessions coverage unique (session_id): only in head": UNIQUE_SESSION_ID,
    "user_sessions unique (session_id): only in head": UNIQUE_SESSION_ID,
    "data_migrations foreign key (user_id): "
    "seed 'REFERENCES users(id) ON DELETE NO ACTION ON UPDATE NO ACTION "
    "AS data_migrations_user_id_fkey' != "
    "head 'REFERENCES users(id) ON DELETE SET NULL ON UPDATE NO ACTION "
    "AS data_migrations_user_id_fkey'": SET_NULL_MIGRATIONS,
    "user_cpn_results column share_token: only in head (text)": SHARE_TOKEN,
    "user_cpn_results coverage unique (share_token): only in head": SHARE_TOKEN,
    "user_cpn_results unique (share_token): only in head": SHARE_TOKEN,
    "user_cpn_results index idx_user_cpn_results_share_token: only in head "
    "(unique index USING btree (share_token))": SHARE_TOKEN,
    "user_cpn_results coverage non-unique (user_id, id): only in head": LATEST_RESULT_INDEX,
    "user_cpn_results index idx_user_cpn_results_user_latest: only in head "
    "(index USING btree (user_id, id))": LATEST_RESULT_INDEX,
    "data_migrations index idx_data_migrations_completed_session: only in head "
    f"(unique index USING btree {_COMPLETED_SESSION_INDEX})": COMPLETED_SESSION_ONCE,
    f"data_migrations coverage unique {_COMPLETED_SESSION_INDEX}: only in head": (
        COMPLETED_SESSION_ONCE
    ),
}

# Tables of the service's own, beside the seed's; each names the migration that adds it.
SERVICE_TABLES: dict[str, str] = {
    "webhook_events": "0002: the inbox of verified Clerk deliveries (DESIGN.md section 2)",
    "deleted_users": "0003: tombstones of users deleted in Clerk (DESIGN.md section 3)",
    "scheduled_job_runs": "0003: when each beat job last ran, so two beats never run a tick twice",
    "clerk_sync_state": "0008: cursor, watermark and last success of each Clerk sync job",
    "me_sync_requests": "0009: first-request sync calls, one per (clerk_id, sessionDataId)",
    "user_interaction_changes": "0004: per-user change stamps for the CPN dirty scan",
}


def parity_failures(
    seed: Mapping[catalog.FactKey, str],
    head: Mapping[catalog.FactKey, str],
    allowed: Mapping[str, str] = ALLOWED_DIFFERENCES,
) -> list[str]:
    """What makes the parity test fail, one line each; empty when the schemas agree."""
    unexpected, stale = catalog.unexplained(catalog.compare(seed, head), allowed)
    return [f"unlisted difference: {text}" for text in unexpected] + [
        f"listed difference no longer occurs: {text}" for text in stale
    ]


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(libpq_url(url), autocommit=True)


@pytest.fixture(scope="module")
def seed_snapshot(test_servers: TestServers) -> catalog.Snapshot:
    with _connect(test_servers.new_database(migrate=False)) as conn:
        for block in schema_blocks():
            conn.execute(block)
        assert catalog.user_tables(conn) == SEED_TABLES
        return catalog.snapshot(conn, SEED_TABLES)


@pytest.fixture(scope="module")
def head_connection(test_servers: TestServers) -> Iterator[psycopg.Connection[Any]]:
    """A database of its own at Alembic head, so a test may alter it."""
    with _connect(test_servers.new_database()) as conn:
        yield conn


@pytest.fixture(scope="module")
def head_snapshot(head_connection: psycopg.Connection[Any]) -> catalog.Snapshot:
    return catalog.snapshot(head_connection, SEED_TABLES)


def test_head_matches_seed_but_for_the_listed_differences(
    seed_snapshot: catalog.Snapshot, head_snapshot: catalog.Snapshot
) -> None:
    failures = parity_failures(seed_snapshot, head_snapshot)
    assert not failures, "\n".join(failures)


def test_every_seed_table_is_compared(seed_snapshot: catalog.Snapshot) -> None:
    """Guards the comparison against an empty or partial catalog read."""
    kinds = {(table, kind) for table, kind, _key in seed_snapshot}
    for table in SEED_TABLES:
        assert {(table, "column"), (table, "index"), (table, "coverage")} <= kinds
    assert len([key for key in seed_snapshot if key[1] == "check"]) == 14
    assert len([key for key in seed_snapshot if key[1] == "foreign key"]) == 5


def test_only_the_listed_service_tables_are_added(
    head_connection: psycopg.Connection[Any],
) -> None:
    extra = catalog.user_tables(head_connection) - SEED_TABLES
    assert extra == SERVICE_TABLES.keys(), "list each service table in SERVICE_TABLES"


class TestComparator:
    """The comparison itself: it must see a change, and notice a listed change that is gone."""

    def test_a_changed_column_length_fails_parity(
        self, seed_snapshot: catalog.Snapshot, head_snapshot: catalog.Snapshot
    ) -> None:
        changed = dict(head_snapshot)
        key = ("user_profiles", "column", "first_name")
        changed[key] = changed[key].replace("(100)", "(120)")

        assert (
            "unlisted difference: user_profiles column first_name: "
            "seed 'character varying(100) NOT NULL' != head 'character varying(120) NOT NULL'"
        ) in parity_failures(seed_snapshot, changed)

    def test_a_listed_difference_that_no_longer_occurs_fails_parity(
        self, seed_snapshot: catalog.Snapshot, head_snapshot: catalog.Snapshot
    ) -> None:
        reverted = dict(head_snapshot)
        key = ("data_migrations", "foreign key", "(user_id)")
        reverted[key] = seed_snapshot[key]

        failures = parity_failures(seed_snapshot, reverted)

        assert any(
            line.startswith(
                "listed difference no longer occurs: data_migrations foreign key (user_id)"
            )
            for line in failures
        ), failures

    @pytest.mark.parametrize(
        ("alter", "expected"),
        [
            (
                "ALTER TABLE user_profiles ALTER COLUMN first_name TYPE varchar(120)",
                "user_profiles column first_name: "
                "seed 'character varying(100) NOT NULL' != head 'character varying(120) NOT NULL'",
            ),
            (
                "ALTER TABLE user_cpn_results ALTER COLUMN total_nuts SET DEFAULT 1",
                "user_cpn_results column total_nuts: "
                "seed 'integer DEFAULT 0' != head 'integer DEFAULT 1'",
            ),
            (
                "ALTER TABLE user_interactions ALTER COLUMN notes SET NOT NULL",
                "user_interactions column notes: seed 'text' != head 'text NOT NULL'",
            ),
            (
                "ALTER TABLE users DROP CONSTRAINT unique_email",
                "users coverage unique (email): only in seed",
            ),
            (
                "ALTER TABLE user_cpn_results DROP CONSTRAINT valid_totals, ADD CONSTRAINT "
                "valid_totals CHECK (total_cost >= 0)",
                "user_cpn_results check valid_totals: seed",
            ),
        ],
    )
    def test_an_altered_database_fails_parity(
        self,
        head_connection: psycopg.Connection[Any],
        seed_snapshot: catalog.Snapshot,
        alter: str,
        expected: str,
    ) -> None:
        with head_connection.transaction(force_rollback=True):
            head_connection.execute(alter)
            altered = catalog.snapshot(head_connection, SEED_TABLES)

        failures = parity_failures(seed_snapshot, altered)

        assert any(line.startswith(f"unlisted difference: {expected}") for line in failures), (
            failures
        )
