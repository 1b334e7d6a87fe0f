"""The three endpoints bench_ingest measures cpn-sync against, served with the same options.

- `bare`: reads the body and answers 204 (the ceiling of Starlette under uvicorn here);
- `insert_one`: verifies with svix and inserts the event, one autocommitted statement per
  request (the durable floor of a store-first endpoint without group commit or a queue; given
  every advantage: no pool pre-ping, a prepared statement, one round trip);
- `inline_upsert`: the pattern of Clerk's sync guide: verify, then upsert the user in the
  request with the ORM;
- `verify_token` (bench_sync's floor): `POST /api/me/sync` that only verifies the Clerk session
  token (PyJWT, RS256, CLERK_JWT_KEY) and answers the subject.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import jwt
import orjson
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from svix.webhooks import Webhook, WebhookVerificationError

from cpn_sync.settings import get_settings
from db.engine import make_async_engine
from db.models import User, WebhookEvent

Handler = Callable[[Request], Awaitable[Response]]


def _app(handler: Handler, *, with_database: bool = True, autocommit: bool = False) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings = get_settings()
        if with_database:
            # No pre-ping: the baselines get every advantage a simple endpoint could have.
            app.state.engine = make_async_engine(
                settings.require_database_url(),
                pool_size=settings.db_pool_size,
                max_overflow=0,
                pool_pre_ping=False,
                isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
            )
            app.state.sessions = async_sessionmaker(app.state.engine, expire_on_commit=False)
        app.state.webhook = Webhook(settings.webhook_secrets[0])
        yield
        if with_database:
            await app.state.engine.dispose()

    return Starlette(
        routes=[Route("/webhooks/clerk", handler, methods=["POST"])], lifespan=lifespan
    )


async def _bare(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


def _verified(request: Request, body: bytes) -> dict[str, object] | None:
    try:
        request.app.state.webhook.verify(body, dict(request.headers))
    except (WebhookVerificationError, ValueError):
        return None
    document: dict[str, object] = orjson.loads(body)
    return document


# Built once, as a careful implementation would; each request only binds its values.
_INSERT_ONE = insert(WebhookEvent).on_conflict_do_nothing(constraint="unique_webhook_svix_id")


async def _insert_one(request: Request) -> Response:
    body = await request.body()
    event = _verified(request, body)
    if event is None:
        return JSONResponse({"error": "bad_signature"}, 401)
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as connection:  # autocommit: the statement is its transaction
        await connection.execute(
            _INSERT_ONE,
            {"svix_id": request.headers["svix-id"], "event_type": event["type"], "payload": event},
        )
    return JSONResponse({"status": "accepted"})


def _moment(milliseconds: object) -> dt.datetime | None:
    if not isinstance(milliseconds, int):
        return None
    return dt.datetime.fromtimestamp(milliseconds / 1000, dt.UTC)


async def _inline_upsert(request: Request) -> Response:
    body = await request.body()
    event = _verified(request, body)
    if event is None:
        return JSONResponse({"error": "bad_signature"}, 401)
    data = event["data"]
    assert isinstance(data, dict)
    primary = next(
        (
            address
            for address in data["email_addresses"]
            if address["id"] == data["primary_email_address_id"]
        ),
        data["email_addresses"][0],
    )
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions.begin() as session:
        user = await session.scalar(select(User).where(User.clerk_id == data["id"]))
        if user is None:
            user = User(clerk_id=data["id"], email=primary["email_address"])
            session.add(user)
        user.email = primary["email_address"]
        user.email_verified = (primary.get("verification") or {}).get("status") == "verified"
        user.first_name = data.get("first_name")
        user.last_name = data.get("last_name")
        user.image_url = data.get("image_url")
        user.created_at = _moment(data.get("created_at"))
        user.updated_at = _moment(data.get("updated_at"))
        user.last_sign_in_at = _moment(data.get("last_sign_in_at"))
    return JSONResponse({"status": "ok"})


bare = _app(_bare, with_database=False)
insert_one = _app(_insert_one, autocommit=True)
inline_upsert = _app(_inline_upsert)


def _token_app() -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pem = get_settings().clerk_jwt_key or ""
        app.state.key = load_pem_public_key(pem.replace("\\n", "\n").encode())
        yield

    async def verify(request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(token, request.app.state.key, algorithms=["RS256"], leeway=5)
        except jwt.InvalidTokenError:
            return JSONResponse({"error": "unauthorized"}, 401)
        return JSONResponse({"user": {"clerk_id": claims["sub"]}})

    return Starlette(routes=[Route("/api/me/sync", verify, methods=["POST"])], lifespan=lifespan)


verify_token = _token_app()
