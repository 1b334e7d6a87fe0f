"""Share tokens of CPN results: the unguessable part of a share link, and their rotation.

A token is 32 random bytes from `secrets` (base64url), one per result row. Rotating a user's
tokens revokes every link they ever shared: the old links answer 404 at once (the share pages
are revalidated on every use, `webhooks/share/page.py`), and each result gets a fresh link.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.cpn.figures import results

SHARE_TOKEN_BYTES = 32


def new_share_token() -> str:
    return secrets.token_urlsafe(SHARE_TOKEN_BYTES)


def share_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}/share/{token}"


def rotate_share_tokens(session: Session, user_id: int, public_base_url: str) -> int:
    """Give every result of the user a new token and link (inside the caller's transaction);
    answer how many results were rotated."""
    ids = session.scalars(
        select(results.c.id).where(results.c.user_id == user_id).with_for_update()
    ).all()
    for result_id in ids:
        token = new_share_token()
        session.execute(
            update(results)
            .where(results.c.id == result_id)
            .values(share_token=token, shareable_graphic_url=share_url(public_base_url, token))
        )
    return len(ids)
