"""The fake Clerk API's `GET /users` query: parameters checked as the spec states, then a page.

`PARAMETERS` names what the fake implements and `UNSUPPORTED` the rest of the spec's
parameters of GetUserList, which the fake refuses with a 422 rather than ignore (a test must
not believe a filter worked); the spec conformance test keeps both lists equal to the spec.
A `starting_after` that is no user of the list is a 422 naming it: the spec declares no 404
for GetUserList (only 200, 400, 401, 422), and the cursor is a parameter it cannot process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

MAX_LIMIT = 500
DEFAULT_LIMIT = 10
DEFAULT_ORDER = "-created_at"
MAX_IDS = 100
PARAMETERS = ("limit", "offset", "order_by", "starting_after", "user_id")
UNSUPPORTED = (
    "email_address", "phone_number", "external_id", "username", "web3_wallet", "organization_id",
    "query", "email_address_query", "phone_number_query", "username_query", "name_query",
    "banned", "last_active_at_before", "last_active_at_after", "last_active_at_since",
    "created_at_before", "created_at_after", "last_sign_in_at_before", "last_sign_in_at_after",
    "provider", "provider_user_id",
)  # fmt: skip
# Fields the fake can order by; Clerk orders by more (the spec's list), which the fake refuses.
ORDER_FIELDS = ("created_at", "updated_at")
CURSOR_ORDERS = ("created_at", "+created_at", "-created_at")


@dataclass
class QueryError(Exception):
    """A parameter Clerk would refuse with 422; `param` goes to the error's meta.param_name."""

    param: str
    message: str
    code: str = "form_param_value_invalid"
    detail: str = ""


# The users sorted by an order (field, descending), and each id's position in that list.
Ordered = tuple[list[dict[str, Any]], dict[str, int]]
OrderedBy = Callable[[str, bool], Ordered]


def sort_users(users: dict[str, dict[str, Any]], field_name: str, descending: bool) -> Ordered:
    ordered = sorted(
        users.values(), key=lambda user: (user[field_name], user["id"]), reverse=descending
    )
    return ordered, {user["id"]: position for position, user in enumerate(ordered)}


def select_users(
    users: dict[str, dict[str, Any]], query: QueryParams, ordered_by: OrderedBy | None = None
) -> list[dict[str, Any]]:
    """The page of `users` that Clerk would answer to `query`. `ordered_by` answers the whole
    list in an order (a cache: a walk over 100,000 users must not sort them for every page)."""
    for name in UNSUPPORTED:
        if name in query:
            raise QueryError(name, "is not supported by the fake Clerk API", "form_param_unknown")
    limit = _integer(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _integer(query, "offset", 0, 0, None)
    order_by = query.get("order_by", DEFAULT_ORDER)  # Clerk keeps the first of several
    field_name = order_by.lstrip("+-")
    if field_name not in ORDER_FIELDS or len(order_by) - len(field_name) > 1:
        raise QueryError("order_by", f"cannot order by {field_name!r}")
    descending = order_by.startswith("-")
    if query.getlist("user_id") or ordered_by is None:
        selected, positions = sort_users(
            {user["id"]: user for user in _filtered(users, query)}, field_name, descending
        )
    else:
        selected, positions = ordered_by(field_name, descending)

    cursor = query.get("starting_after")
    if cursor is not None:
        if order_by not in CURSOR_ORDERS:
            raise QueryError(
                "starting_after", "requires ordering by created_at", detail=f"order_by={order_by}"
            )
        if offset:
            raise QueryError("starting_after", "cannot be combined with a non-zero offset")
        position = positions.get(cursor)
        if position is None:
            raise QueryError("starting_after", "is not the id of a user of this list")
        selected = selected[position + 1 :]
    return selected[offset : offset + limit]


COUNT_PARAMETERS = ("user_id",)


def count_users(users: dict[str, dict[str, Any]], query: QueryParams) -> int:
    """What `GET /users/count` answers: the users the filter selects (only `user_id` is
    implemented; the spec's other filters are refused, as for the list)."""
    for name in query:
        if name not in COUNT_PARAMETERS:
            raise QueryError(name, "is not supported by the fake Clerk API", "form_param_unknown")
    return len(_filtered(users, query))


def _filtered(users: dict[str, dict[str, Any]], query: QueryParams) -> list[dict[str, Any]]:
    ids = query.getlist("user_id")
    if not ids:
        return list(users.values())
    if len(ids) > MAX_IDS:
        raise QueryError("user_id", f"accepts up to {MAX_IDS} user IDs")
    excluded = {value[1:] for value in ids if value.startswith("-")}
    included = {value.lstrip("+") for value in ids if not value.startswith("-")}
    return [
        user
        for user in users.values()
        if user["id"] not in excluded and (not included or user["id"] in included)
    ]


def _integer(query: QueryParams, name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(name, "must be an integer", "form_param_format_invalid") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise QueryError(name, f"must be {bounds}")
    return value
