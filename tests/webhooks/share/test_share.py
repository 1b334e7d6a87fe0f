"""The share page and graphic, through the web app with a committed result."""

from __future__ import annotations

import asyncio
import io
import secrets
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette

from cpn_sync.settings import get_settings
from db.engine import make_async_engine
from tests.services import environment
from tests.workers.cpn.conftest import MONDAY, add_interaction, latest_of, make_user, recompute

PUBLIC_BASE_URL = "https://share.example/cpn"


class MetaTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        key = values.get("property") or values.get("name")
        if tag == "meta" and key and values.get("content") is not None:
            self.tags[key] = values["content"] or ""


def meta_tags(page: str) -> dict[str, str]:
    parser = MetaTags()
    parser.feed(page)
    return parser.tags


class Client:
    """Requests straight into the ASGI app, one event loop per request."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
                return await client.get(path, headers=headers)

        return asyncio.run(send())


def share_app(database_url: str) -> Starlette:
    """The app without its lifespan (one event loop per request): its share pages read through
    an engine that holds no connection between loops, set where the lifespan puts the web's."""
    from webhooks.app import create_app

    app = create_app()
    app.state.db_engine = make_async_engine(database_url, poolclass=NullPool)
    return app


@pytest.fixture
def client(database_url: str) -> Iterator[Client]:
    with environment(PUBLIC_BASE_URL=PUBLIC_BASE_URL):
        get_settings.cache_clear()
        yield Client(share_app(database_url))
    get_settings.cache_clear()


@pytest.fixture
def token(clean_db: Engine) -> str:
    with Session(clean_db) as session, session.begin():
        user = make_user(session)
        add_interaction(session, user, cost="30.00", minutes=15, nuts=1, on=MONDAY)
        add_interaction(session, user, cost="90.00", minutes=90, nuts=2, on=MONDAY.replace(day=20))
        recompute(session, user)
        share_token: str = latest_of(session, user).share_token
    return share_token


class TestImage:
    def test_png_is_1200_by_630_and_not_blank(self, client: Client, token: str) -> None:
        response = client.get(f"/share/{token}.png")

        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert image.format == "PNG"
        assert image.size == (1200, 630)
        assert len(image.getcolors(maxcolors=1_000_000) or []) > 1

    def test_cached_by_etag(self, client: Client, token: str) -> None:
        first = client.get(f"/share/{token}.png")
        etag = first.headers["etag"]

        again = client.get(f"/share/{token}.png", headers={"If-None-Match": etag})
        changed = client.get(f"/share/{token}.png", headers={"If-None-Match": '"other"'})

        assert "max-age" in first.headers["cache-control"]
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
        assert (changed.status_code, changed.content) == (200, first.content)


class TestPage:
    def test_open_graph_and_twitter_tags_point_at_the_image(
        self, client: Client, token: str
    ) -> None:
        response = client.get(f"/share/{token}")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        tags = meta_tags(response.text)
        assert tags["og:image"] == f"{PUBLIC_BASE_URL}/share/{token}.png"
        assert tags["twitter:image"] == tags["og:image"]
        assert tags["twitter:card"] == "summary_large_image"
        assert tags["og:url"] == f"{PUBLIC_BASE_URL}/share/{token}"
        assert (tags["og:image:width"], tags["og:image:height"]) == ("1200", "630")
        assert tags["og:title"] == "Cost per nut: 40.00"
        assert "3 nuts" in tags["og:description"]

    def test_page_holds_no_personal_data(self, client: Client, token: str, engine: Engine) -> None:
        page = client.get(f"/share/{token}").text

        with engine.connect() as connection:
            clerk_id, email = connection.execute(
                text(
                    "SELECT u.clerk_id, u.email FROM users u JOIN user_cpn_results r "
                    "ON r.user_id = u.id WHERE r.share_token = :t"
                ),
                {"t": token},
            ).one()
        for private in (clerk_id, email, "private note"):
            assert private not in page

    def test_values_are_html_escaped(self, token: str, database_url: str) -> None:
        hostile = 'https://x.example/"><script>alert(1)</script>'
        with environment(PUBLIC_BASE_URL=hostile):
            get_settings.cache_clear()
            page = Client(share_app(database_url)).get(f"/share/{token}").text
        get_settings.cache_clear()

        assert "<script>" not in page
        assert meta_tags(page)["og:image"] == f"{hostile}/share/{token}.png"


class TestUnknownTokens:
    @pytest.mark.parametrize(
        "path",
        [
            "/share/{unknown}",
            "/share/{unknown}.png",
            "/share/short",
            "/share/short.png",
            "/share/not~a~token~but~long~enough~to~pass~length",
            "/share/" + "a" * 200,
            "/share/{token}.png.png",
            "/share/{token}x.png",
        ],
    )
    def test_answer_404_with_no_hint(self, client: Client, token: str, path: str) -> None:
        unknown = secrets.token_urlsafe(32)
        response = client.get(path.format(unknown=unknown, token=token))
        nowhere = client.get("/no-such-page")

        assert response.status_code == 404
        assert response.content == nowhere.content
        assert "etag" not in response.headers
