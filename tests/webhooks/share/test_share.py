"""The share page and graphic, through the web app with a committed result."""

from __future__ import annotations

import asyncio
import io
import secrets
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import Engine, Row, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette

from cpn_sync.cli import main
from cpn_sync.settings import Settings, get_settings
from cpn_sync.task_contract import CPN_REVOKE_SHARE
from db.engine import make_async_engine
from tests.services import environment
from tests.worker_process import WorkerProcess
from tests.workers.cpn.conftest import MONDAY, add_interaction, latest_of, make_user, recompute
from tests.workers.cpn.test_tasks import wait_for

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


def owner_of(engine: Engine, token: str) -> Row[Any]:
    """The user whose result the token shows: id, clerk_id, email."""
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT u.id, u.clerk_id, u.email FROM users u JOIN user_cpn_results r "
                "ON r.user_id = u.id WHERE r.share_token = :t"
            ),
            {"t": token},
        ).one()


@pytest.fixture
def client(database_url: str) -> Iterator[Client]:
    with environment(PUBLIC_BASE_URL=PUBLIC_BASE_URL, PUBLIC_APP_URL=None):
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

        assert first.headers["cache-control"] == "public, no-cache"
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

        owner = owner_of(engine, token)
        for private in (owner.clerk_id, owner.email, "private note"):
            assert private not in page

    def test_values_are_html_escaped(self, token: str, database_url: str) -> None:
        hostile = 'https://x.example/"><script>alert(1)</script>'
        with environment(PUBLIC_BASE_URL=hostile):
            get_settings.cache_clear()
            page = Client(share_app(database_url)).get(f"/share/{token}").text
        get_settings.cache_clear()

        assert "<script>" not in page
        assert meta_tags(page)["og:image"] == f"{hostile}/share/{token}.png"


class TestVisitorPage:
    """What a visitor reads; how a browser renders it: test_browser.py."""

    def test_shows_the_figures_and_what_cpn_is_under_a_strict_policy(
        self, client: Client, token: str
    ) -> None:
        response = client.get(f"/share/{token}")

        for shown in ("40.00", "Total cost", "120.00", "1.75", "What is CPN?", f'"{token}.png"'):
            assert shown in response.text
        policy = response.headers["content-security-policy"]
        assert policy.startswith("default-src 'none'; style-src 'sha256-")
        assert "script-src" not in policy
        assert "<script" not in response.text
        assert "app.example" not in response.text  # no PUBLIC_APP_URL, no link

    def test_links_to_the_app_when_set(self, token: str, database_url: str) -> None:
        with environment(PUBLIC_APP_URL="https://app.example/?a=1&b=2"):
            get_settings.cache_clear()
            page = Client(share_app(database_url)).get(f"/share/{token}").text
        get_settings.cache_clear()

        assert '<a class="cta" href="https://app.example/?a=1&amp;b=2">' in page

    def test_app_url_must_be_http(self) -> None:
        with (
            environment(PUBLIC_APP_URL="javascript:alert(1)"),
            pytest.raises(ValueError, match="public_app_url"),
        ):
            Settings()


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


def tokens_of(engine: Engine, user_id: int) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        return [
            (row.share_token, row.shareable_graphic_url)
            for row in connection.execute(
                text(
                    "SELECT share_token, shareable_graphic_url FROM user_cpn_results "
                    "WHERE user_id = :u ORDER BY id"
                ),
                {"u": user_id},
            )
        ]


class TestLinksStopAtOnce:
    """No cache may keep showing a link after its user is deleted or revokes it: every copy is
    revalidated (cheaply, by ETag) before it is used again."""

    @pytest.mark.parametrize("suffix", ["", ".png"])
    def test_page_and_image_are_revalidated_on_every_use(
        self, client: Client, token: str, suffix: str
    ) -> None:
        first = client.get(f"/share/{token}{suffix}")
        again = client.get(
            f"/share/{token}{suffix}", headers={"If-None-Match": first.headers["etag"]}
        )

        cache_control = {part.strip() for part in first.headers["cache-control"].split(",")}
        assert "no-cache" in cache_control
        assert not any(
            part.startswith(("max-age=", "s-maxage="))
            for part in cache_control - {"max-age=0", "s-maxage=0"}
        )
        assert (again.status_code, again.content) == (304, b"")
        assert again.headers["cache-control"] == first.headers["cache-control"]

    @pytest.mark.parametrize("suffix", ["", ".png"])
    def test_a_deleted_users_link_answers_404_at_once(
        self, client: Client, token: str, engine: Engine, suffix: str
    ) -> None:
        cached = client.get(f"/share/{token}{suffix}")
        user_id = owner_of(engine, token).id
        with engine.begin() as connection:  # what user.deleted does: the results go by cascade
            connection.execute(text("DELETE FROM users WHERE id = :u"), {"u": user_id})

        revalidated = client.get(
            f"/share/{token}{suffix}", headers={"If-None-Match": cached.headers["etag"]}
        )

        assert cached.status_code == 200
        assert "no-cache" in cached.headers["cache-control"]  # no copy is used unasked
        assert revalidated.status_code == 404

    def test_revoke_share_command_rotates_every_link(
        self, client: Client, token: str, engine: Engine
    ) -> None:
        owner = owner_of(engine, token)
        user_id, clerk_id = owner.id, owner.clerk_id
        with Session(engine) as session, session.begin():  # a second, older result
            add_interaction(session, user_id, cost="10.00", minutes=60, nuts=5, on=MONDAY)
            recompute(session, user_id)
        before = tokens_of(engine, user_id)

        result = CliRunner().invoke(main, ["cpn", "revoke-share", clerk_id])

        after = tokens_of(engine, user_id)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1] == "share links revoked: 2 results have a new link"
        assert len(after) == len(before) == 2
        for (old, _), (new, url) in zip(before, after, strict=True):
            assert new != old
            assert url == f"{PUBLIC_BASE_URL}/share/{new}"
            assert client.get(f"/share/{old}").status_code == 404
            assert client.get(f"/share/{old}.png").status_code == 404
            assert client.get(f"/share/{new}").status_code == 200
        assert token not in result.output

    def test_revoke_share_task_in_a_worker_process(
        self, client: Client, token: str, engine: Engine
    ) -> None:
        from workers.app import app

        user_id = owner_of(engine, token).id
        with WorkerProcess(queues="cpn", extra_env={"PUBLIC_BASE_URL": PUBLIC_BASE_URL}) as worker:
            app.send_task(CPN_REVOKE_SHARE, args=[user_id])
            wait_for(lambda: tokens_of(engine, user_id)[0][0] != token, what="the revocation")
            wait_for(lambda: bool(worker.events("cpn.share_revoked")), what="the task's end")

        [(new, url)] = tokens_of(engine, user_id)
        assert url == f"{PUBLIC_BASE_URL}/share/{new}"
        assert client.get(f"/share/{token}").status_code == 404
        assert client.get(f"/share/{token}.png").status_code == 404
        assert client.get(f"/share/{new}.png").status_code == 200
        assert token not in worker.log_path.read_text()

    def test_revoke_share_enqueue_hands_it_to_the_workers(self, token: str, engine: Engine) -> None:
        from workers.app import app

        owner = owner_of(engine, token)
        user_id, clerk_id = owner.id, owner.clerk_id
        with WorkerProcess(queues="cpn") as worker:
            result = CliRunner().invoke(main, ["cpn", "revoke-share", clerk_id, "--enqueue"])
            assert (result.exit_code, result.output) == (0, "share revocation queued\n")
            wait_for(lambda: tokens_of(engine, user_id)[0][0] != token, what="the revocation")
        del app, worker

    def test_revoke_share_of_an_unknown_user_is_a_clear_error(self, clean_db: Engine) -> None:
        result = CliRunner().invoke(main, ["cpn", "revoke-share", "user_nobody"])

        assert result.exit_code != 0
        assert "no user with Clerk id user_nobody" in result.output
