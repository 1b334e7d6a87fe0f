"""POST /webhooks/clerk, one test per row of the contract table (DESIGN.md section 1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import orjson
import pytest
import redis
from sqlalchemy import Engine, text

from cpn_sync.settings import Settings
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.webhooks.conftest import (
    ENDPOINT,
    deliver,
    enqueued_ids,
    new_event,
    payload_of,
    post,
    running_app,
    stored,
    svix_scheme_signature,
    task_messages,
)

pytestmark = pytest.mark.anyio


class TestNewEvent:
    async def test_valid_new_event_is_stored_then_enqueued(
        self, settings: Settings, clean_db: Engine, broker: redis.Redis
    ) -> None:
        event = new_event("user.created")
        delivery = deliver(event)
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.status_code == 200
        assert response.json() == {"status": "accepted", "id": delivery.svix_id}
        [row] = stored(clean_db)
        assert row.svix_id == delivery.svix_id
        assert row.event_type == "user.created"
        assert row.clerk_user_id == event["data"]["id"]
        assert row.payload == event
        assert row.status == "received"
        assert row.occurred_at == dt.datetime.fromtimestamp(event["timestamp"], dt.UTC)
        assert task_messages(broker) == [{"task": "webhooks.process_events", "args": [[row.id]]}]

    async def test_session_event_is_stored_under_its_user(
        self, settings: Settings, clean_db: Engine, broker: redis.Redis
    ) -> None:
        event = new_event("session.created")
        async with running_app(settings) as client:
            response = await post(client, deliver(event))
        assert response.status_code == 200
        [row] = stored(clean_db)
        assert row.clerk_user_id == event["data"]["user_id"]

    async def test_event_of_unhandled_type_is_stored_too(
        self, settings: Settings, clean_db: Engine, broker: redis.Redis
    ) -> None:
        event = {"object": "event", "type": "organization.created", "data": {"id": "org_1"}}
        async with running_app(settings) as client:
            response = await post(client, deliver(event))
        assert response.json()["status"] == "accepted"
        [row] = stored(clean_db)
        assert (row.event_type, row.clerk_user_id, row.occurred_at) == (
            "organization.created",
            None,
            None,
        )

    @pytest.mark.parametrize(
        ("event_type", "data"),
        [
            ("email.created", {"id": "ema_1", "user_id": "user_subject"}),
            ("sms.created", {"id": "sms_1", "user_id": "user_subject"}),
            (
                "organizationMembership.created",
                {"id": "orgmem_1", "public_user_data": {"user_id": "user_subject"}},
            ),
            ("paymentAttempt.created", {"id": "pa_1", "payer": {"user_id": "user_subject"}}),
            ("organization.created", {"id": "org_1", "created_by": "user_subject"}),
        ],
    )
    async def test_event_of_any_type_is_stored_under_the_user_it_names(
        self,
        event_type: str,
        data: dict[str, object],
        settings: Settings,
        clean_db: Engine,
        broker: redis.Redis,
    ) -> None:
        """So that `user.deleted` erases every stored payload about the user (DESIGN.md 3)."""
        event = {"object": "event", "type": event_type, "data": data}
        async with running_app(settings) as client:
            response = await post(client, deliver(event))
        assert response.json()["status"] == "accepted"
        [row] = stored(clean_db)
        assert (row.event_type, row.clerk_user_id) == (event_type, "user_subject")

    @pytest.mark.parametrize("unit", ["seconds", "milliseconds"])
    async def test_envelope_timestamp_in_seconds_or_milliseconds(
        self, unit: str, settings: Settings, clean_db: Engine, broker: redis.Redis
    ) -> None:
        event = new_event("user.updated")
        event["timestamp"] = 1716883200 if unit == "seconds" else 1716883200123
        async with running_app(settings) as client:
            await post(client, deliver(event))
        [row] = stored(clean_db)
        expected = dt.datetime(2024, 5, 28, 8, 0, tzinfo=dt.UTC)
        if unit == "milliseconds":
            expected += dt.timedelta(milliseconds=123)
        assert row.occurred_at == expected


class TestDuplicate:
    async def test_same_svix_id_again_is_a_duplicate_with_no_second_effect(
        self, settings: Settings, clean_db: Engine, broker: redis.Redis
    ) -> None:
        delivery = deliver(new_event())
        async with running_app(settings) as client:
            first = await post(client, delivery)
            again = await post(client, delivery)
        assert first.json()["status"] == "accepted"
        assert again.status_code == 200
        assert again.json() == {"status": "duplicate", "id": delivery.svix_id}
        assert len(stored(clean_db)) == 1
        assert len(enqueued_ids(broker)) == 1


class TestMissingHeaders:
    @pytest.mark.parametrize("header", ["svix-id", "svix-timestamp", "svix-signature"])
    async def test_missing_svix_header_is_400_naming_it(
        self, header: str, settings: Settings, clean_db: Engine, broker: redis.Redis
    ) -> None:
        delivery = deliver(new_event())
        del delivery.headers[header]
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.status_code == 400
        assert response.json()["error"] == "missing_headers"
        assert header in response.json()["detail"]
        assert stored(clean_db) == []
        assert task_messages(broker) == []

    async def test_svix_id_too_long_to_store_is_400(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        delivery = deliver(new_event(), svix_id="msg_" + "x" * 300)
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_headers")
        assert stored(clean_db) == []


class TestNotJson:
    @pytest.mark.parametrize(
        "body", [b"", b"not json", b'{"object": "event", "type": "user.created"', b"NaN"]
    )
    async def test_signed_body_that_is_not_json_is_400(
        self, body: bytes, settings: Settings, clean_db: Engine
    ) -> None:
        async with running_app(settings) as client:
            response = await post(client, deliver(body))
        assert response.status_code == 400
        assert response.json()["error"] == "not_json"
        assert stored(clean_db) == []

    async def test_non_utf8_body_is_400_not_500(self, settings: Settings, clean_db: Engine) -> None:
        delivery = deliver(b"{}")
        delivery.body = b'{"type": "\xff\xfe"}'
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.status_code == 400
        assert response.json() == {"error": "not_json", "detail": "body is not UTF-8 text"}
        assert stored(clean_db) == []

    async def test_validly_signed_body_that_is_not_utf8_is_400(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        """Signed by hand as Svix's scheme says, so no svix version can call it unsigned."""
        body = b'{"object": "event", "type": "user.created", "data": {"id": "\xff"}}'
        delivery = deliver(b"{}")
        delivery.body = body
        delivery.headers["svix-signature"] = svix_scheme_signature(
            TEST_WEBHOOK_SECRET, delivery.headers, body
        )
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.status_code == 400
        assert response.json() == {"error": "not_json", "detail": "body is not UTF-8 text"}
        assert stored(clean_db) == []


LONE_SURROGATE = "holds a lone UTF-16 surrogate, which PostgreSQL cannot store"
TOO_DEEP = "is nested deeper than 1024 levels"


class TestContentThatCannotBeStoredAsItIs:
    """A verified Clerk event is never refused for its content: what JSONB or orjson cannot
    hold is replaced by a marker and named in `cpn_sync_unstorable`; the rest is kept."""

    @pytest.mark.parametrize(
        ("raw", "path", "problem"),
        [
            (b'"An\\u0000a"', "data.first_name", "holds \\u0000, which PostgreSQL cannot store"),
            (b"1e400", "data.first_name", "is a number outside the double range"),
            (b'"\\ud800"', "data.first_name", LONE_SURROGATE),
            (b"[" * 1100 + b"]" * 1100, "data.first_name" + "[0]" * 1022, TOO_DEEP),
        ],
        ids=["nul", "huge-number", "lone-surrogate", "too-deep"],
    )
    async def test_is_stored_with_the_value_replaced_and_named_and_spares_its_batch(
        self,
        raw: bytes,
        path: str,
        problem: str,
        settings: Settings,
        clean_db: Engine,
        broker: redis.Redis,
    ) -> None:
        import asyncio

        hostile = new_event()
        hostile["data"]["first_name"] = "PLACEHOLDER"
        hostile["data"]["last_name"] = "Kept"
        delivery = deliver(orjson.dumps(hostile).replace(b'"PLACEHOLDER"', raw))
        good = [deliver(new_event()) for _ in range(5)]
        async with running_app(settings) as client:
            answers = await asyncio.gather(
                post(client, delivery), *(post(client, item) for item in good)
            )
        assert [answer.json()["status"] for answer in answers] == ["accepted"] * 6
        with clean_db.connect() as connection:  # as text: the test engine's json.loads
            payload = orjson.loads(  # would not read 1024 levels
                connection.scalar(
                    text("SELECT payload::text FROM webhook_events WHERE svix_id = :id"),
                    {"id": delivery.svix_id},
                )
            )
        assert payload["data"]["last_name"] == "Kept"
        assert payload["data"]["first_name"] == f"<removed by cpn-sync: {problem}>" or (
            problem.startswith("is nested")
        )
        [recorded] = payload["cpn_sync_unstorable"]
        assert recorded["problem"] == problem
        assert recorded["path"] == (path if len(path) <= 120 else path[:100] + "...")
        with clean_db.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM webhook_events")) == 6
        assert len(enqueued_ids(broker)) == 6

    @pytest.mark.parametrize("body", [b"[1e400]", b'{"object": "event", "data": {"x": 1e400}}'])
    async def test_a_body_that_is_no_envelope_is_still_400(
        self, body: bytes, settings: Settings, clean_db: Engine
    ) -> None:
        async with running_app(settings) as client:
            response = await post(client, deliver(body))
        assert (response.status_code, response.json()["error"]) == (400, "not_clerk_event")
        assert stored(clean_db) == []


class TestNotClerkEnvelope:
    @pytest.mark.parametrize(
        ("document", "mentions"),
        [
            ([1, 2, 3], "body"),
            ({"object": "event", "data": {}}, "type"),
            ({"object": "event", "type": "user.created"}, "data"),
            ({"object": "user", "type": "user.created", "data": {}}, "object"),
            ({"object": "event", "type": "", "data": {}}, "type"),
            ({"object": "event", "type": "x" * 101, "data": {}}, "type"),
            ({"object": "event", "type": "user.created", "data": []}, "data"),
            ({"object": "event", "type": "user.created", "data": {}, "timestamp": "soon"}, "time"),
        ],
    )
    async def test_json_that_is_not_an_envelope_is_400_naming_the_field(
        self, document: object, mentions: str, settings: Settings, clean_db: Engine
    ) -> None:
        import orjson

        async with running_app(settings) as client:
            response = await post(client, deliver(orjson.dumps(document)))
        assert response.status_code == 400
        assert response.json()["error"] == "not_clerk_event"
        assert mentions in response.json()["detail"]
        assert stored(clean_db) == []

    async def test_unknown_envelope_fields_are_ignored_and_kept(
        self, settings: Settings, clean_db: Engine, broker: redis.Redis
    ) -> None:
        event = new_event()
        event["added_by_clerk_later"] = {"nested": [1, 2]}
        async with running_app(settings) as client:
            response = await post(client, deliver(event))
        assert response.json()["status"] == "accepted"
        assert payload_of(stored(clean_db)[0])["added_by_clerk_later"] == {"nested": [1, 2]}


class TestBadSignature:
    async def test_body_changed_after_signing_is_401(
        self, settings: Settings, clean_db: Engine, broker: redis.Redis
    ) -> None:
        delivery = deliver(new_event())
        delivery.body = delivery.body.replace(b"user.created", b"user.deleted")
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.status_code == 401
        assert response.json()["error"] == "bad_signature"
        assert stored(clean_db) == []
        assert task_messages(broker) == []

    async def test_signed_with_another_secret_is_401(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        delivery = deliver(new_event(), secret="whsec_" + "b3RoZXItc2VjcmV0LW5vdC1vdXJz")
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert (response.status_code, response.json()["error"]) == (401, "bad_signature")

    @pytest.mark.parametrize(
        "signature",
        [
            "v1",
            "v1;abc",
            "garbage",
            "v1,not-base64!!",
            "v1,abc",  # base64 of the wrong length
            ",c2lnbmF0dXJl",
            "v1,c2lnbmF0dXJlIQ==  v1,c2lnbmF0dXJlIQ==",  # two spaces: an empty entry
            "v1,c2lnbmF0dXJlIQ== v1",
        ],
    )
    async def test_malformed_signature_header_is_401_saying_so(
        self, signature: str, settings: Settings, clean_db: Engine
    ) -> None:
        delivery = deliver(new_event())
        delivery.headers["svix-signature"] = signature
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.status_code == 401
        assert response.json() == {
            "error": "bad_signature",
            "detail": "svix-signature header is malformed",
        }
        assert stored(clean_db) == []

    async def test_empty_signature_header_is_missing(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        delivery = deliver(new_event())
        delivery.headers["svix-signature"] = ""
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert (response.status_code, response.json()["error"]) == (400, "missing_headers")
        assert stored(clean_db) == []

    async def test_signed_by_svix_scheme_by_hand_is_accepted(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        """The scheme the non-UTF-8 test signs with is the one the endpoint verifies."""
        delivery = deliver(new_event())
        delivery.headers["svix-signature"] = svix_scheme_signature(
            TEST_WEBHOOK_SECRET, delivery.headers, delivery.body
        )
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert (response.status_code, response.json()["status"]) == (200, "accepted")

    async def test_well_formed_signatures_of_other_versions_are_skipped(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        """A later scheme's entry (`v1a`) beside ours is no reason to refuse the delivery."""
        delivery = deliver(new_event())
        good = delivery.headers["svix-signature"]
        delivery.headers["svix-signature"] = f"v1a,c2lnbmF0dXJlIQ== v1,c2lnbmF0dXJlIQ== {good}"
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert (response.status_code, response.json()["status"]) == (200, "accepted")
        assert len(stored(clean_db)) == 1

    async def test_signature_header_without_comma_is_401(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        delivery = deliver(new_event())
        delivery.headers["svix-signature"] = delivery.headers["svix-signature"].replace(",", "")
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.status_code == 401
        assert response.json() == {
            "error": "bad_signature",
            "detail": "svix-signature header is malformed",
        }


class TestTolerance:
    @pytest.mark.parametrize(
        ("minutes", "stored_rows"), [(-6, 0), (6, 0), (-4, 1), (4, 1)], ids=str
    )
    async def test_six_minutes_off_is_401_and_four_minutes_off_is_accepted(
        self,
        minutes: int,
        stored_rows: int,
        settings: Settings,
        clean_db: Engine,
        broker: redis.Redis,
    ) -> None:
        at = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
        async with running_app(settings) as client:
            response = await post(client, deliver(new_event(), at=at))
        if stored_rows:
            assert (response.status_code, response.json()["status"]) == (200, "accepted")
        else:
            older_or_newer = "older" if minutes < 0 else "newer"
            assert (response.status_code, response.json()) == (
                401,
                {
                    "error": "bad_timestamp",
                    "detail": f"svix-timestamp is {older_or_newer} than the 5-minute tolerance",
                },
            )
        assert len(stored(clean_db)) == stored_rows
        assert len(enqueued_ids(broker)) == stored_rows

    async def test_timestamp_that_is_not_a_number_is_401(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        delivery = deliver(new_event())
        delivery.headers["svix-timestamp"] = "yesterday"
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert (response.status_code, response.json()) == (
            401,
            {"error": "bad_timestamp", "detail": "svix-timestamp is not a Unix time"},
        )


class TestTooLarge:
    LIMIT = 1024 * 1024

    async def test_declared_length_over_limit_is_413(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        body = b"x" * (self.LIMIT + 1)
        delivery = deliver(body)
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"
        assert stored(clean_db) == []

    async def test_streamed_body_without_length_over_limit_is_413(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        delivery = deliver(b"x" * (self.LIMIT + 1))
        sent: list[int] = []

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(delivery.body), 64 * 1024):
                sent.append(start)
                yield delivery.body[start : start + 64 * 1024]

        async with running_app(settings) as client:
            response = await client.post(ENDPOINT, content=chunks(), headers=delivery.headers)
        assert response.status_code == 413
        assert stored(clean_db) == []

    async def test_lying_content_length_over_limit_is_413(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        delivery = deliver(b"x" * (self.LIMIT + 1))
        delivery.headers["content-length"] = "100"
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.status_code == 413
        assert stored(clean_db) == []

    async def test_body_of_exactly_the_limit_is_read(
        self, settings: Settings, clean_db: Engine
    ) -> None:
        event = new_event()
        event["padding"] = ""
        size = len(deliver(event).body)
        event["padding"] = "p" * (self.LIMIT - size)
        delivery = deliver(event)
        assert len(delivery.body) == self.LIMIT
        async with running_app(settings) as client:
            response = await post(client, delivery)
        assert response.json()["status"] == "accepted"
