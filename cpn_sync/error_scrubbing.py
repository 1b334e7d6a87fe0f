"""What an error tracker may receive: the scrubber every Sentry event and breadcrumb passes
through before it leaves the process (DESIGN.md section 6: no email, name, address, IP, token,
metadata or payload ever leaves, in an error report either).

Two rules, applied to the whole event: a field whose name says it holds personal data or a
secret is replaced (the names the logs refuse, plus what the SDK's integrations add: a request's
body, cookies and headers, a task's arguments, the user); and in every remaining string, what
looks like an email address, an IP address or a token is replaced. A database error's message,
which may quote row values, is replaced by its class, SQLSTATE and constraint.
"""

from __future__ import annotations

import re
from typing import Any

from cpn_sync.db_errors import describe_database_error, is_database_error
from cpn_sync.logs import FORBIDDEN_FIELDS

FILTERED = "[Filtered]"
# Beyond the log's names: what sentry-sdk's integrations attach.
DROPPED_FIELDS = FORBIDDEN_FIELDS | {
    "args", "kwargs", "cookies", "env", "query_string", "user", "vars", "authorization",
    "address", "phone", "phone_number", "image_url", "dsn", "api_key", "secret_key",
}  # fmt: skip
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b")
TOKEN = re.compile(
    r"\b(?:whsec|sk|pk|sess|Bearer)[_ ][\w+/=.-]{6,}|\beyJ[\w-]+\.[\w-]+\.[\w-]*", re.IGNORECASE
)


def scrub_text(text: str) -> str:
    for pattern in (EMAIL, TOKEN, IPV6, IPV4):
        text = pattern.sub(FILTERED, text)
    return text


def scrub(value: Any) -> Any:
    """A copy of `value` with personal fields replaced and every string scrubbed."""
    if isinstance(value, dict):
        return {
            key: FILTERED if str(key).lower() in DROPPED_FIELDS else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """sentry-sdk's `before_send`: the event as it may leave."""
    error = (hint.get("exc_info") or (None, None, None))[1]
    described = describe_database_error(error) if error and is_database_error(error) else None
    if described is not None:
        for exception in event.get("exception", {}).get("values", []):
            exception["value"] = f"{described} (message left out)"
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {key: request[key] for key in ("method", "url") if key in request}
    event.pop("user", None)
    event.pop("server_name", None)  # a host name can be a person's laptop
    cleaned: dict[str, Any] = scrub(event)
    return cleaned


def scrub_breadcrumb(crumb: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """sentry-sdk's `before_breadcrumb`: a log line or SQL statement, without values."""
    cleaned: dict[str, Any] = scrub(crumb)
    return cleaned
