"""What the web process opens at startup and closes at shutdown (the Starlette lifespan).

One async engine (pooled psycopg 3 connections), the group-committing inbox, the publishing
thread, the signature verifier and the gauges of the inbox and the queues. Requests reach them
through `app.state`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from cpn_sync.settings import Settings, SettingsError
from db.engine import make_async_engine
from webhooks.deadlines import Deadlines
from webhooks.inbox import Inbox
from webhooks.me_sync.config import MeSync, token_verifier
from webhooks.observability.broker_metrics import BrokerGauges
from webhooks.observability.metrics import InboxGauges
from webhooks.observability.readiness import Readiness
from webhooks.publisher import Publisher
from webhooks.signature import SignatureVerifier

APPLICATION_NAME = "cpn-sync-web"  # how operators find the web process in pg_stat_activity


@dataclass
class PendingRequests:
    """Webhook requests of this process between arrival and answer (reading their body or
    waiting for their row's commit): WEBHOOK_MAX_PENDING bounds it, and with it the memory."""

    count: int = 0


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    verifier: SignatureVerifier
    inbox: Inbox
    publisher: Publisher
    gauges: InboxGauges
    broker_gauges: BrokerGauges
    readiness: Readiness
    deadlines: Deadlines
    me_sync: MeSync
    pending: PendingRequests = field(default_factory=PendingRequests)

    @classmethod
    async def open(
        cls, settings: Settings, *, gauge_max_age: float = 5.0, ready_max_age: float = 1.0
    ) -> Services:
        verifier = SignatureVerifier(settings.webhook_secrets)  # a bad secret fails startup
        token = token_verifier(settings)  # and so does a CLERK_JWT_KEY that is no RSA key
        kept = settings.webhook_inbox_writers + (0 if token is None else 1)  # + sync lookups
        if kept >= settings.db_pool_size:
            raise SettingsError(
                "WEBHOOK_INBOX_WRITERS (plus one with CLERK_JWT_KEY) must be below DB_POOL_SIZE: "
                "each writer and the sync lookups keep a connection, and readiness checks, "
                "metrics and sync calls need some too"
            )
        engine = make_async_engine(
            settings.require_database_url(),
            pool_size=settings.db_pool_size,
            max_overflow=0,
            pool_timeout=5,
            # Every statement of the web process is one self-contained write or read: autocommit
            # saves the BEGIN and COMMIT round trips, and a statement that returned is durable.
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 5, "application_name": APPLICATION_NAME},
        )
        publisher = Publisher(settings)
        inbox = Inbox(
            engine,
            publisher.submit,
            batch_size=settings.webhook_commit_batch,
            writers=settings.webhook_inbox_writers,
        )
        publisher.start()
        await inbox.start()
        gauges = InboxGauges(engine, max_age=gauge_max_age)
        broker_gauges = BrokerGauges(settings, max_age=gauge_max_age)
        readiness = Readiness(engine, settings, max_age=ready_max_age)
        deadlines = Deadlines()
        deadlines.start()
        me_sync = MeSync.open(settings, token, engine, APPLICATION_NAME)
        return cls(
            settings, engine, verifier, inbox, publisher, gauges, broker_gauges, readiness,
            deadlines, me_sync,
        )  # fmt: skip

    async def close(self) -> None:
        """Finish queued writes, then publish what they produced, then close the pool."""
        await self.inbox.close()
        await self.me_sync.close()
        await self.deadlines.close()
        await asyncio.to_thread(self.publisher.close)
        await self.engine.dispose()
        self.broker_gauges.close()
        self.readiness.close()


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
