"""Share links of CPN results: `GET /share/{token}` (the page a visitor sees, with Open Graph
and Twitter card tags for link previews: webhooks/share/markup.py) and `GET /share/{token}.png`
(the graphic). `webhooks.app` mounts `routes`.

A token is 32 random bytes from `secrets` (db/cpn/share.py), so a link cannot be guessed.
Unknown and malformed tokens get the same plain 404 as any unknown path: no hint of what
exists. A link stops the moment its user is deleted or revokes it (the token is rotated), so no
cache may answer for it without asking: both answers are `no-cache` (stored, but revalidated on
every use) and carry an ETag of their content, so a revalidation costs a 304, not a render.

Database access: the web process's async engine, which the app's lifespan puts on
`app.state.db_engine`.
"""

from __future__ import annotations

import hashlib
import re

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from cpn_sync.settings import get_settings
from db.cpn.queries import result_by_share_token_query
from webhooks.share.card import ShareCard, render_png
from webhooks.share.markup import render_page

# secrets.token_urlsafe(n) is base64url; at least 16 bytes (22 characters) ever accepted.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{22,128}")
# Shared caches and browsers may keep a copy but must revalidate it on every use: a deleted
# user's or a revoked link then answers 404 at once instead of lingering for a max-age.
CACHE_CONTROL = "public, no-cache"


def database_engine(request: Request) -> AsyncEngine:
    """The web process's engine, which the app's lifespan puts on `app.state.db_engine`."""
    engine: AsyncEngine = request.app.state.db_engine
    return engine


async def _card(request: Request) -> ShareCard | None:
    token = request.path_params["token"]
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    async with database_engine(request).connect() as connection:
        row = (await connection.execute(result_by_share_token_query(token))).one_or_none()
    return None if row is None else ShareCard.from_row(row)


def _not_found() -> Response:
    return PlainTextResponse("Not Found", status_code=404)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {part.strip().removeprefix("W/") for part in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


async def share_image(request: Request) -> Response:
    card = await _card(request)
    if card is None:
        return _not_found()
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": card.etag}
    if _matches(request.headers.get("if-none-match"), card.etag):
        return Response(status_code=304, headers=headers)
    png = await run_in_threadpool(render_png, card)
    return Response(png, media_type="image/png", headers=headers)


async def share_page(request: Request) -> Response:
    card = await _card(request)
    if card is None:
        return _not_found()
    settings = get_settings()
    token = request.path_params["token"]
    page_url = f"{settings.public_base_url.rstrip('/')}/share/{token}"
    page = render_page(card, token, page_url, f"{page_url}.png", settings.public_app_url)
    etag = f'"{hashlib.sha256(page.html.encode()).hexdigest()[:32]}"'
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": etag,
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": page.content_security_policy,
        "X-Content-Type-Options": "nosniff",
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return HTMLResponse(page.html, headers=headers)


# The image route first: `{token}` alone would also match `<token>.png`.
routes = [
    Route("/share/{token}.png", share_image, methods=["GET"]),
    Route("/share/{token}", share_page, methods=["GET"]),
]
