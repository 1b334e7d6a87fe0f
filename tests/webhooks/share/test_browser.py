"""The share page as a visitor sees it: a real `cpn-sync web` serves it and a headless Chromium
(Debian's package, driven over its DevTools pipe by tests/browser.py: no Python dependency and
no chromedriver to keep in step with the browser) loads it at a phone's and a desktop's width.

The screenshots are kept in `.data/test-artifacts/` (share-page-phone.png,
share-page-desktop.png, share-page-widest-phone.png), overwritten by each run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cpn_sync.local import free_port
from tests.browser import Chromium
from tests.services import ROOT
from tests.webhooks.conftest import WebServer, serving
from tests.workers.cpn.conftest import MONDAY, add_interaction, latest_of, make_user, recompute

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / ".data" / "test-artifacts"
APP_URL = "https://app.example/start?from=share"
WIDTHS = {"phone": (390, 844, True), "desktop": (1280, 800, False)}

MEASURE = """(async () => {
  const img = document.querySelector("main img");
  await img.decode();
  const root = document.documentElement;
  const cta = document.querySelector("a.cta");
  return {
    naturalWidth: img.naturalWidth,
    naturalHeight: img.naturalHeight,
    shownWidth: img.getBoundingClientRect().width,
    scrollWidth: root.scrollWidth,
    clientWidth: root.clientWidth,
    figures: [...document.querySelectorAll("dl dt")].map((dt) => dt.textContent),
    headline: document.querySelector("h1").textContent,
    heading: getComputedStyle(document.querySelector("h1")).color,
    link: cta && cta.href,
    text: document.body.innerText,
  };
})()"""


@pytest.fixture(scope="module")
def server(
    database_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebServer]:
    port = free_port()
    with serving(
        database_url,
        broker_url,
        tmp_path_factory.mktemp("share-web"),
        PORT=str(port),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        PUBLIC_APP_URL=APP_URL,
    ) as web:
        yield web


@pytest.fixture
def token(clean_db: Engine) -> str:
    with Session(clean_db) as session, session.begin():
        user = make_user(session)
        add_interaction(session, user, cost="30.00", minutes=15, nuts=1, on=MONDAY)
        add_interaction(session, user, cost="90.00", minutes=90, nuts=2, on=MONDAY.replace(day=20))
        recompute(session, user)
        share_token: str = latest_of(session, user).share_token
    return share_token


@pytest.fixture
def largest_token(clean_db: Engine) -> str:
    """A result whose figures are as wide as their columns allow."""
    with Session(clean_db) as session, session.begin():
        user = make_user(session)
        add_interaction(session, user, cost="99999999.99", minutes=1440, nuts=1, on=MONDAY)
        recompute(session, user)
        share_token: str = latest_of(session, user).share_token
    return share_token


def visit(
    url: str, profile: Path, size: str, name: str = "share-page"
) -> tuple[dict[str, Any], list[str]]:
    width, height, mobile = WIDTHS[size]
    with Chromium(profile, width, height, mobile) as browser:
        browser.load(url)
        seen: dict[str, Any] = browser.evaluate(MEASURE)
        browser.screenshot(ARTIFACTS / f"{name}-{size}.png")
        return seen, browser.console_errors()


@pytest.mark.parametrize("size", list(WIDTHS))
def test_page_renders_with_its_card_and_no_console_error(
    server: WebServer, token: str, tmp_path: Path, size: str
) -> None:
    seen, errors = visit(f"{server.url}/share/{token}", tmp_path / "profile", size)

    assert errors == []
    assert (seen["naturalWidth"], seen["naturalHeight"]) == (1200, 630)
    assert seen["scrollWidth"] <= seen["clientWidth"] == WIDTHS[size][0]  # nothing overflows
    assert 0 < seen["shownWidth"] <= seen["clientWidth"]
    assert seen["headline"] == "40.00"
    assert seen["heading"] == "rgb(250, 204, 21)"  # the card's accent: the stylesheet applies
    assert seen["figures"] == ["Interactions", "Total cost", "Nuts", "Hours"]
    assert "What is CPN?" in seen["text"]
    assert seen["link"] == APP_URL
    assert (ARTIFACTS / f"share-page-{size}.png").stat().st_size > 10_000


def test_the_widest_figures_stay_within_a_phone(
    server: WebServer, largest_token: str, tmp_path: Path
) -> None:
    seen, errors = visit(
        f"{server.url}/share/{largest_token}", tmp_path / "profile", "phone", "share-page-widest"
    )

    assert errors == []
    assert seen["headline"] == "99,999,999.99"
    assert seen["scrollWidth"] <= seen["clientWidth"] == WIDTHS["phone"][0]
