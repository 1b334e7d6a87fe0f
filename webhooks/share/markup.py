"""The HTML of a share page: the card's figures as text, the card image, what CPN is, and a link
to the app when `PUBLIC_APP_URL` is set. Figures only, never a name, an email or a note.

One inline stylesheet in the card's colours and no script: the page's Content-Security-Policy
allows that stylesheet alone (by its hash), images from the page's own origin (and its inline
icon), and nothing else. Every value is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass

from webhooks.share.card import HEIGHT, WIDTH, ShareCard

STYLE = """
*{box-sizing:border-box}
html{background:#111827;color:#f3f4f6;-webkit-text-size-adjust:100%}
body{margin:0;min-height:100vh;border-left:.5rem solid #facc15;
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:56rem;margin:0 auto;padding:2rem 1.25rem 3rem}
.label{margin:0;color:#9ca3af;font-size:.95rem;letter-spacing:.12em;text-transform:uppercase}
h1{margin:.25rem 0 1.25rem;font-size:clamp(3rem,14vw,6.5rem);line-height:1;color:#facc15;
overflow-wrap:anywhere}
h1.long{font-size:clamp(2.25rem,10vw,5rem)}
.score{margin:0 0 .5rem;font-size:1.15rem}
.bar{height:.9rem;border-radius:.45rem;background:#1f2937;overflow:hidden;margin-bottom:1.5rem}
.bar span{display:block;height:100%;background:#facc15;border-radius:.45rem}
dl{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:.75rem;margin:0 0 1rem}
dl div{background:#1f2937;border-radius:.9rem;padding:.9rem 1rem}
dt{color:#9ca3af;font-size:.9rem}
dd{margin:.2rem 0 0;font-size:1.5rem;font-weight:600;overflow-wrap:anywhere}
dd.long{font-size:1.15rem}
.period{color:#9ca3af;margin:0 0 2rem}
figure{margin:0 0 2rem}
img{display:block;width:100%;height:auto;border-radius:.9rem;background:#1f2937}
h2{font-size:1.25rem;margin:0 0 .5rem}
section p{color:#d1d5db;margin:0 0 1rem;max-width:40rem}
.cta{display:inline-block;margin-top:.5rem;padding:.75rem 1.25rem;border-radius:.6rem;
background:#facc15;color:#111827;font-weight:700;text-decoration:none}
.cta:focus-visible,.cta:hover{background:#fde047}
footer{margin-top:2.5rem;color:#6b7280;font-size:.85rem}
@media (min-width:48rem){main{padding:3rem 2.5rem 4rem}
dl{grid-template-columns:repeat(4,minmax(0,1fr))}}
"""

# The tab's icon, inline: without one a browser asks for /favicon.ico, which is a 404 here.
ICON = (
    "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
    "<rect width='16' height='16' rx='3' fill='%23facc15'/></svg>"
)


@dataclass(frozen=True)
class SharePage:
    html: str
    content_security_policy: str


def _policy(style: str) -> str:
    """Only this page's stylesheet (its score bar's width is part of it), same-origin images."""
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _figure(label: str, value: str) -> str:
    """One total; a long value is set smaller and wraps after a thousands separator, if at all,
    rather than mid-group."""
    size = ' class="long"' if len(value) > 9 else ""
    return f"<div><dt>{_e(label)}</dt><dd{size}>{_e(value).replace(',', ',<wbr>')}</dd></div>"


def render_page(
    card: ShareCard, token: str, page_url: str, image_url: str, app_url: str | None
) -> SharePage:
    """The page of one result. The `<img>` asks for `<token>.png` relative to the page, so it
    comes from the page's own origin (and path prefix) whatever `PUBLIC_BASE_URL` says; the
    tags for link previews carry the absolute addresses."""
    title = _e(f"Cost per nut: {card.cost_per_nut_text}")
    summary, page, image = _e(card.summary), _e(page_url), _e(image_url)
    figures = "\n".join(_figure(label, value) for label, value in card.figures)
    headline_class = ' class="long"' if len(card.cost_per_nut_text) > 8 else ""
    style = f"{STYLE}.bar span{{width:{card.score * 10:.1f}%}}\n"
    invite = (
        f'<a class="cta" href="{_e(app_url)}">Work out your own CPN</a>'
        if app_url
        else "<p>Ask whoever sent this link for the app that works it out.</p>"
    )
    page_html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="dark">
<link rel="icon" href="{_e(ICON)}">
<title>{title}</title>
<meta name="description" content="{summary}">
<meta property="og:type" content="website">
<meta property="og:title" content="{title}">
<meta property="og:description" content="{summary}">
<meta property="og:url" content="{page}">
<meta property="og:image" content="{image}">
<meta property="og:image:type" content="image/png">
<meta property="og:image:width" content="{WIDTH}">
<meta property="og:image:height" content="{HEIGHT}">
<meta property="og:image:alt" content="{summary}">
<meta name="twitter:card" content="summary_large_image">
<meta name="twitter:title" content="{title}">
<meta name="twitter:description" content="{summary}">
<meta name="twitter:image" content="{image}">
<style>{style}</style>
</head>
<body>
<main>
<p class="label">Cost per nut</p>
<h1{headline_class}>{_e(card.cost_per_nut_text)}</h1>
<p class="score">Efficiency score <strong>{card.score:.3f}</strong> / 10</p>
<div class="bar" role="img" aria-label="Efficiency score {card.score:.3f} of 10"><span></span></div>
<dl>
{figures}
</dl>
<p class="period">{_e(card.period_text)}</p>
<figure>
<img src="{_e(token)}.png" width="{WIDTH}" height="{HEIGHT}" alt="{summary}">
</figure>
<section>
<h2>What is CPN?</h2>
<p>CPN, cost per nut, is what the recorded interactions cost in total divided by the nuts they
brought. The efficiency score, from 0 to 10, rises with nuts per hour and falls as the cost per
nut grows.</p>
{invite}
</section>
<footer>Shared from CPN: figures only, nothing that names the person who shared them.</footer>
</main>
</body>
</html>
"""
    return SharePage(page_html, _policy(style))
