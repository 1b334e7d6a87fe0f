"""Clerk session tokens, verified without a network call (DESIGN.md section 10).

PyJWT with `cryptography` rather than the official SDK (`clerk-backend-api`'s
`authenticate_request`): the SDK pulls in its whole generated API client for one check, and a
request answers with a bare "signed out" state whose reasons we would have to map back; here
every check is ours, each refusal has its own reason, and the key is parsed once at start-up.
Only RS256 is accepted, whatever the token's header says (`none`, and `HS256` keyed with the
public key, are refused before any signature code runs).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from cpn_sync.settings import SettingsError
from webhooks.me_sync.errors import SyncError, SyncReason

ALGORITHM = "RS256"
LEEWAY_SECONDS = 5
MAX_TOKEN_LENGTH = 8192  # Clerk's tokens are well under 2 KB; nothing larger is parsed
# Clerk's user ids: `user_` and base62 characters (27 today).
USER_ID = re.compile(r"user_[A-Za-z0-9]{1,64}")


def load_public_key(pem: str) -> RSAPublicKey:
    """CLERK_JWT_KEY as Clerk shows it, with real newlines or `\\n` escapes (one-line env files)."""
    text = pem.strip().replace("\\n", "\n").encode()
    try:
        key = load_pem_public_key(text)
    except (ValueError, TypeError):
        raise SettingsError("CLERK_JWT_KEY: not a PEM public key") from None
    if not isinstance(key, RSAPublicKey):
        raise SettingsError("CLERK_JWT_KEY: Clerk's session tokens are signed with an RSA key")
    return key


@dataclass(frozen=True, slots=True)
class SessionToken:
    user_id: str  # `sub`
    session_id: str | None  # `sid`


def _refused(reason: SyncReason, detail: str) -> SyncError:
    return SyncError(reason, detail)


class TokenVerifier:
    def __init__(self, key: RSAPublicKey, authorized_parties: list[str]) -> None:
        self._key = key
        self._parties = frozenset(authorized_parties)

    def verify(self, authorization: str | None) -> SessionToken:
        """The `Authorization: Bearer <token>` header's token, checked; else `SyncError` (401)."""
        if not authorization:
            raise _refused(SyncReason.NO_BEARER, "Authorization: Bearer <session token>")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _refused(SyncReason.NO_BEARER, "Authorization: Bearer <session token>")
        if len(token) > MAX_TOKEN_LENGTH:
            raise _refused(SyncReason.UNREADABLE, "the token is not a session token")
        claims = self._decode(token)
        now = time.time()
        issued = claims.get("iat")
        if not isinstance(issued, int | float) or isinstance(issued, bool):
            raise _refused(SyncReason.MISSING_CLAIM, "the token has no valid iat")
        if issued > now + LEEWAY_SECONDS:
            raise _refused(SyncReason.ISSUED_IN_FUTURE, "the token is issued in the future")
        if self._parties and claims.get("azp") not in self._parties:
            raise _refused(
                SyncReason.UNAUTHORIZED_PARTY, "the token's azp is not an allowed origin"
            )
        subject = claims.get("sub")
        if not isinstance(subject, str) or USER_ID.fullmatch(subject) is None:
            raise _refused(SyncReason.BAD_SUBJECT, "the token's sub is not a Clerk user id")
        session_id = claims.get("sid")
        return SessionToken(subject, session_id if isinstance(session_id, str) else None)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise _refused(SyncReason.UNREADABLE, "the token is not a JWT") from None
        if header.get("alg") != ALGORITHM:
            raise _refused(SyncReason.BAD_ALGORITHM, f"only {ALGORITHM} tokens are accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "nbf", "iat", "sub"],
                    "verify_aud": False,
                    "verify_iat": False,  # checked below, with a reason of its own
                },
            )
        except jwt.ExpiredSignatureError:
            raise _refused(SyncReason.EXPIRED, "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _refused(SyncReason.NOT_YET_VALID, "the token is not valid yet") from None
        except jwt.MissingRequiredClaimError as error:
            raise _refused(SyncReason.MISSING_CLAIM, f"the token has no {error.claim}") from None
        except jwt.InvalidSignatureError:
            raise _refused(SyncReason.BAD_SIGNATURE, "the signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise _refused(SyncReason.BAD_ALGORITHM, f"only {ALGORITHM} is accepted") from None
        except jwt.InvalidTokenError:
            # Undecodable segments, claims of the wrong type (a text `exp`), and the checks
            # newer PyJWT releases add: refused, never a 500.
            raise _refused(SyncReason.UNREADABLE, "the token cannot be read") from None
        return claims
