"""The share graphic of one CPN result: a 1200 x 630 PNG, the size social networks preview.

It shows figures only (totals, cost per nut, efficiency score, the period), never a name, an
email or a note. A result row never changes once written, so a card is cached by its content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 630
# Bump when the drawing changes, so that caches holding the old picture revalidate.
RENDER_VERSION = "1"

BACKGROUND = (17, 24, 39)
PANEL = (31, 41, 55)
ACCENT = (250, 204, 21)
TEXT = (243, 244, 246)
MUTED = (156, 163, 175)


@dataclass(frozen=True)
class ShareCard:
    total_interactions: int
    total_cost: Decimal
    total_nuts: int
    total_time_hours: Decimal
    average_cost_per_nut: Decimal | None
    efficiency_score: Decimal
    period_start: dt.date | None
    period_end: dt.date | None

    @classmethod
    def from_row(cls, row: Any) -> ShareCard:
        """From a `user_cpn_results` row: the figures, and nothing else of it."""
        return cls(
            total_interactions=row.total_interactions or 0,
            total_cost=row.total_cost or Decimal(0),
            total_nuts=row.total_nuts or 0,
            total_time_hours=row.total_time_hours or Decimal(0),
            average_cost_per_nut=row.average_cost_per_nut,
            efficiency_score=row.overall_efficiency_score or Decimal(0),
            period_start=row.calculation_period_start,
            period_end=row.calculation_period_end,
        )

    @property
    def etag(self) -> str:
        digest = hashlib.sha256(f"{RENDER_VERSION}|{self!r}".encode()).hexdigest()
        return f'"{digest[:32]}"'

    @property
    def cost_per_nut_text(self) -> str:
        return "n/a" if self.average_cost_per_nut is None else f"{self.average_cost_per_nut:,.2f}"

    @property
    def period_text(self) -> str:
        if self.period_start is None or self.period_end is None:
            return "No interactions recorded"
        start, end = (f"{day.day} {day:%b %Y}" for day in (self.period_start, self.period_end))
        return start if start == end else f"{start} to {end}"

    @property
    def score(self) -> Decimal:
        """The efficiency score within 0 to 10, as the card's bar and the page's show it."""
        return min(max(self.efficiency_score, Decimal(0)), Decimal(10))

    @property
    def figures(self) -> tuple[tuple[str, str], ...]:
        """The four totals under the headline figure, label and value, on the card and page."""
        return (
            ("Interactions", f"{self.total_interactions:,}"),
            ("Total cost", f"{self.total_cost:,.2f}"),
            ("Nuts", f"{self.total_nuts:,}"),
            ("Hours", f"{self.total_time_hours:,.2f}"),
        )

    @property
    def summary(self) -> str:
        """One line for the page's description and the image's alt text."""
        return (
            f"{self.total_interactions} interactions, {self.total_nuts} nuts, "
            f"efficiency score {self.efficiency_score:.3f} of 10. {self.period_text}."
        )


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fitted(draw: ImageDraw.ImageDraw, text: str, size: int, width: int) -> Any:
    """The largest font up to `size` in which the text fits `width` (the biggest totals)."""
    while size > 12 and draw.textlength(text, font=_font(size)) > width:
        size -= 2
    return _font(size)


def _stat(draw: ImageDraw.ImageDraw, x: int, y: int, label: str, value: str) -> None:
    draw.rounded_rectangle((x, y, x + 250, y + 130), radius=18, fill=PANEL)
    draw.text((x + 24, y + 22), label, font=_font(26), fill=MUTED)
    draw.text((x + 24, y + 62), value, font=_fitted(draw, value, 44, 206), fill=TEXT)


@lru_cache(maxsize=64)
def render_png(card: ShareCard) -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 16, HEIGHT), fill=ACCENT)

    draw.text((70, 50), "COST PER NUT", font=_font(34), fill=MUTED)
    big = _fitted(draw, card.cost_per_nut_text, 150, 1060)
    draw.text((66, 95), card.cost_per_nut_text, font=big, fill=ACCENT)

    score = card.score
    draw.text((70, 290), f"Efficiency score {score:.3f} / 10", font=_font(36), fill=TEXT)
    draw.rounded_rectangle((70, 345, 1130, 371), radius=13, fill=PANEL)
    filled = 70 + int((1130 - 70) * score / 10)
    if filled > 83:
        draw.rounded_rectangle((70, 345, filled, 371), radius=13, fill=ACCENT)

    for index, (label, value) in enumerate(card.figures):
        _stat(draw, 70 + index * 270, 400, label, value)

    draw.text((70, 565), card.period_text, font=_font(28), fill=MUTED)
    draw.text((1130, 565), "CPN", font=_font(32), fill=ACCENT, anchor="ra")

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
