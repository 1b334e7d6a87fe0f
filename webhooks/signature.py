"""Svix signature verification against every configured secret (rotation without downtime).

The `svix` library does the cryptography. Every answer the contract names is decided here, by the
service's own checks, before the library runs: its exception types and messages are not a
contract (svix 2.9 changed both), so the library's only job is to say "signed" or "not signed".
"""

from __future__ import annotations

import binascii
import re
import time
from collections.abc import Mapping, Sequence

from svix.webhooks import Webhook, WebhookVerificationError

from cpn_sync.settings import SettingsError
from webhooks.errors import Reason, RejectionError

# Svix accepts both header families; so do we.
ID_HEADERS = ("svix-id", "webhook-id")
TIMESTAMP_HEADERS = ("svix-timestamp", "webhook-timestamp")
SIGNATURE_HEADERS = ("svix-signature", "webhook-signature")
MAX_SVIX_ID_LENGTH = 255  # webhook_events.svix_id is varchar(255)
TOLERANCE_SECONDS = 5 * 60  # Svix's, and the contract's

# `v1,<base64>` entries separated by single spaces (later versions such as `v1a` are well formed,
# and simply match no secret of ours).
_SIGNATURE_ENTRY = re.compile(
    r"v[0-9]+[a-z]*,(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
)
_UNIX_TIME = re.compile(r"[0-9]{1,15}")


def _first(headers: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value:
            return value
    return None


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The svix id of a delivery, when it has one (also for logging rejected deliveries)."""
    return _first(headers, ID_HEADERS)


def signature_header_is_well_formed(header: str) -> bool:
    return all(_SIGNATURE_ENTRY.fullmatch(entry) for entry in header.split(" "))


def timestamp_problem(header: str, now: float) -> str | None:
    """Why `svix-timestamp` cannot be accepted at `now`, or None."""
    if not _UNIX_TIME.fullmatch(header):
        return "svix-timestamp is not a Unix time"
    sent_at = int(header)
    if sent_at < now - TOLERANCE_SECONDS:
        return "svix-timestamp is older than the 5-minute tolerance"
    if sent_at > now + TOLERANCE_SECONDS:
        return "svix-timestamp is newer than the 5-minute tolerance"
    return None


class SignatureVerifier:
    """Checks a raw body against the configured `whsec_` secrets; answers the svix id."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise SettingsError("CLERK_WEBHOOK_SECRET is not set: no delivery could be verified")
        self._webhooks: list[Webhook] = []
        for position, secret in enumerate(secrets, start=1):
            try:
                self._webhooks.append(Webhook(secret))
            except (ValueError, binascii.Error) as error:
                raise SettingsError(
                    f"CLERK_WEBHOOK_SECRET entry {position} is not a valid whsec_ secret"
                ) from error

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str:
        """Raise `RejectionError` unless a secret signed exactly these bytes; answer the svix id.

        `headers` with lower-case names; a plain dict is best (Starlette's `Headers` scans its
        list on every lookup).
        """
        svix_id = delivery_id(headers)
        timestamp = _first(headers, TIMESTAMP_HEADERS)
        signature = _first(headers, SIGNATURE_HEADERS)
        if svix_id is None or timestamp is None or signature is None:
            missing = [
                names[0]
                for names, value in (
                    (ID_HEADERS, svix_id),
                    (TIMESTAMP_HEADERS, timestamp),
                    (SIGNATURE_HEADERS, signature),
                )
                if value is None
            ]
            raise RejectionError(
                Reason.MISSING_HEADERS, f"missing header(s): {', '.join(missing)}", svix_id=svix_id
            )
        if len(svix_id) > MAX_SVIX_ID_LENGTH:
            raise RejectionError(
                Reason.INVALID_HEADERS,
                f"svix-id is longer than {MAX_SVIX_ID_LENGTH} characters",
                svix_id=svix_id[:MAX_SVIX_ID_LENGTH],
            )
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise RejectionError(
                Reason.NOT_JSON, "body is not UTF-8 text", svix_id=svix_id
            ) from None
        if not signature_header_is_well_formed(signature):
            raise RejectionError(
                Reason.BAD_SIGNATURE, "svix-signature header is malformed", svix_id=svix_id
            )
        problem = timestamp_problem(timestamp, time.time())
        if problem is not None:
            raise RejectionError(Reason.BAD_TIMESTAMP, problem, svix_id=svix_id)
        plain_headers = headers if isinstance(headers, dict) else dict(headers)
        for webhook in self._webhooks:
            try:
                webhook.verify(body, plain_headers)
            except (WebhookVerificationError, ValueError):
                continue  # whatever the library's reason: not signed by this secret
            return svix_id
        # The tolerance may have run out between our check and the library's.
        problem = timestamp_problem(timestamp, time.time())
        if problem is not None:
            raise RejectionError(Reason.BAD_TIMESTAMP, problem, svix_id=svix_id)
        raise RejectionError(
            Reason.BAD_SIGNATURE, "no signature matches a configured secret", svix_id=svix_id
        )
