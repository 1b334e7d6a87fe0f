"""Hypothesis strategies for Clerk's webhook payloads, drawn from Clerk's published schema
(../shared/clerk-openapi/webhooks-2025-04-15.yml): every property Clerk may send, optional ones
present or not, `nullable` ones null or not.

Values are drawn as the schema types them, with a few kept as Clerk really sends them (the
schema says only "integer" or "string"): `*_at` fields and `timestamp` are epoch milliseconds
in a real range, ids are short ASCII, email addresses look like addresses. Strings never carry
`\\u0000` (JSONB refuses it) or lone surrogates (not UTF-8): those are hostile content, tested
elsewhere.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.services import SHARED

SCHEMA_FILE = SHARED / "clerk-openapi" / "webhooks-2025-04-15.yml"
HANDLED_TYPES = (
    "user.created",
    "user.updated",
    "user.deleted",
    "session.created",
    "session.pending",
    "session.ended",
    "session.removed",
    "session.revoked",
)
LATEST_MS = 4_102_444_800_000  # 2100-01-01

CHARACTERS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TEXT = st.text(CHARACTERS, max_size=30)
NAMES = st.text(CHARACTERS, max_size=150)
IDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=24)
EPOCH_MS = st.integers(min_value=0, max_value=LATEST_MS)
# By property name, where the schema's bare type says less than Clerk sends.
BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "id": IDS,
    "user_id": IDS,
    "primary_email_address_id": IDS,
    "email_address": st.emails(),
    "first_name": NAMES,
    "last_name": NAMES,
}


@cache
def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SCHEMA_FILE.read_text())
    return loaded


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = _document()["components"]["schemas"][name]
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            part = _resolve(part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return merged
    return schema


def from_schema(schema: dict[str, Any], name: str = "", depth: int = 0) -> st.SearchStrategy[Any]:
    schema = _resolve(schema)
    strategy = _not_null(schema, name, depth)
    return st.none() | strategy if schema.get("nullable") else strategy


def _not_null(schema: dict[str, Any], name: str, depth: int) -> st.SearchStrategy[Any]:
    choices = schema.get("oneOf") or schema.get("anyOf")
    if choices:
        return st.one_of([from_schema(choice, name, depth) for choice in choices])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if name in BY_NAME:
        return BY_NAME[name]
    kind = schema.get("type", "object")
    if kind == "string":
        return TEXT
    if kind == "integer":
        return EPOCH_MS if name.endswith("_at") else st.integers(-(2**31), 2**31)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        if depth > 4:
            return st.just([])
        return st.lists(from_schema(schema.get("items", {}), name, depth + 1), max_size=2)
    properties = schema.get("properties", {})
    if not properties or depth > 5:
        return st.just({}) if depth > 5 else st.dictionaries(IDS, TEXT, max_size=2)
    required = [key for key in properties if key in schema.get("required", [])]
    optional = [key for key in properties if key not in required]
    return st.fixed_dictionaries(
        {key: from_schema(properties[key], key, depth + 1) for key in required},
        optional={key: from_schema(properties[key], key, depth + 1) for key in optional},
    )


def _event_schema(event_type: str) -> dict[str, Any]:
    operation = _document()["x-webhooks"][event_type]["post"]
    schema: dict[str, Any] = operation["requestBody"]["content"]["application/json"]["schema"]
    return schema


@st.composite
def clerk_events(draw: st.DrawFn, event_type: str) -> dict[str, Any]:
    """One delivery of `event_type` as Clerk's schema allows it."""
    payload: dict[str, Any] = draw(from_schema(_event_schema(event_type)))
    payload["type"] = event_type
    payload["object"] = "event"
    payload["timestamp"] = draw(st.integers(1_500_000_000, 4_102_444_800) | EPOCH_MS)
    return payload
