"""Svix signature verification against every configured secret (rotation without downtime).

The `svix` library does the cryptography and the ±5-minute timestamp check; this module only
turns its three kinds of failure (`WebhookVerificationError`, `ValueError` for a malformed
signature header, `UnicodeDecodeError` for a body that is not UTF-8) into the contract's answers.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence

from svix.webhooks import Webhook, WebhookVerificationError

from cpn_sync.settings import SettingsError
from webhooks.errors import Reason, RejectionError

# Svix accepts both header families; so do we.
ID_HEADERS = ("svix-id", "webhook-id")
TIMESTAMP_HEADERS = ("svix-timestamp", "webhook-timestamp")
SIGNATURE_HEADERS = ("svix-signature", "webhook-signature")
MAX_SVIX_ID_LENGTH = 255  # webhook_events.svix_id is varchar(255)

# The library's messages for timestamp failures (standardwebhooks); anything else is a signature
# failure. A test pins these, so a library change that renames them is caught.
_TIMESTAMP_MESSAGES = {
    "Message timestamp too old": "svix-timestamp is older than the 5-minute tolerance",
    "Message timestamp too new": "svix-timestamp is newer than the 5-minute tolerance",
    "Invalid Signature Headers": "svix-timestamp is not a Unix time",
}


def _first(headers: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value:
            return value
    return None


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The svix id of a delivery, when it has one (also for logging rejected deliveries)."""
    return _first(headers, ID_HEADERS)


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
        missing = [
            names[0]
            for names in (ID_HEADERS, TIMESTAMP_HEADERS, SIGNATURE_HEADERS)
            if _first(headers, names) is None
        ]
        if missing:
            raise RejectionError(
                Reason.MISSING_HEADERS, f"missing header(s): {', '.join(missing)}", svix_id=svix_id
            )
        assert svix_id is not None
        if len(svix_id) > MAX_SVIX_ID_LENGTH:
            raise RejectionError(
                Reason.INVALID_HEADERS,
                f"svix-id is longer than {MAX_SVIX_ID_LENGTH} characters",
                svix_id=svix_id[:MAX_SVIX_ID_LENGTH],
            )
        plain_headers = headers if isinstance(headers, dict) else dict(headers)
        failure: RejectionError | None = None
        for webhook in self._webhooks:
            try:
                webhook.verify(body, plain_headers)
            except UnicodeDecodeError:
                raise RejectionError(
                    Reason.NOT_JSON, "body is not UTF-8 text", svix_id=svix_id
                ) from None
            except WebhookVerificationError as error:
                failure = self._classify(str(error), svix_id)
            except ValueError:  # an entry without a comma, or one that is not base64
                failure = RejectionError(
                    Reason.BAD_SIGNATURE, "svix-signature header is malformed", svix_id=svix_id
                )
            else:
                return svix_id
        assert failure is not None
        raise failure

    @staticmethod
    def _classify(message: str, svix_id: str) -> RejectionError:
        if message in _TIMESTAMP_MESSAGES:
            return RejectionError(
                Reason.BAD_TIMESTAMP, _TIMESTAMP_MESSAGES[message], svix_id=svix_id
            )
        return RejectionError(
            Reason.BAD_SIGNATURE,
            "no signature matches a configured secret",
            svix_id=svix_id,
        )
