"""A JSON Lines export with a known mix of good, duplicate and bad lines, and what an import of
it must report. The plan decides each line's fate first; the expectations follow from it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.workers.onboarding.factories import entry

# Every tenth line is bad; every tenth from the fifth on repeats a good line a few lines back.
BAD_EVERY, DUPLICATE_AT, BAD_AT = 10, 4, 9


@dataclass(frozen=True)
class Bad:
    """A bad line: its bytes (given a fresh clerk id) and the reason the report must give.
    `migration` is True when the line reaches the migration (a failed row is recorded)."""

    make: Callable[[str], bytes]
    reason: str
    migration: bool = False


def _line(clerk_id: str, session_data: Any, email: str | None = None) -> bytes:
    document = {"clerk_id": clerk_id, "email": email or f"{clerk_id}@example.com"}
    document["sessionData"] = session_data
    return json.dumps(document).encode()


def _profile(**changes: Any) -> dict[str, Any]:
    return {"firstName": "Ana", "age": 27, "ethnicity": "latina", "rating": 8.5, **changes}


TAKEN_EMAIL = "taken@example.com"

BAD_LINES = [
    Bad(lambda c: b'{"clerk_id": "' + c.encode() + b'", ', "not valid JSON (Expecting "
        "property name enclosed in double quotes at column " + "{col})"),
    Bad(lambda c: json.dumps({"email": "x@example.com", "sessionData": {}}).encode(),
        "clerk_id: is required"),
    Bad(lambda c: _line(c, {"profile": _profile(age=16)}),
        "profile.age: must be between 18 and 99", migration=True),
    Bad(lambda c: _line(c, {"dataEntry": entry(date="2999-01-01")}),
        "dataEntry.date: must not be in the future (compared with today in UTC)",
        migration=True),
    Bad(lambda c: _line(c, {"profile": _profile()}, email=TAKEN_EMAIL),
        "its email address already belongs to another user"),
    Bad(lambda c: _line(c, "profile"), "onboarding: must be an object", migration=True),
    Bad(lambda c: _line(c, {"dataEntry": [entry(), entry(time=5, nuts=9)]}),
        "dataEntry[1].time: must be between 15 and 1440 minutes; "
        "dataEntry[1].nuts: must be between 0 and 5", migration=True),
    Bad(lambda c: b'{"clerk_id": "\xff\xfe"}', "not UTF-8 text"),
    Bad(lambda c: b"[1, 2]", "line: must be an object"),
    Bad(lambda c: json.dumps({"clerk_id": c, "email": 5, "sessionData": {}}).encode(),
        "email: must be text"),
]  # fmt: skip


@dataclass
class Export:
    lines: list[bytes] = field(default_factory=list)
    good_clerk_ids: list[str] = field(default_factory=list)
    interactions: int = 0
    duplicates: int = 0
    # line number -> (clerk id or None, the planned bad line)
    bad: dict[int, tuple[str | None, Bad]] = field(default_factory=dict)

    @property
    def text(self) -> bytes:
        return b"\n".join(self.lines) + b"\n"

    def expected_reason(self, number: int, migration_id: int | None) -> str:
        _clerk_id, bad = self.bad[number]
        if bad.migration:
            return f"{bad.reason} (data migration {migration_id})"
        return bad.reason.replace("{col}", str(len(self.lines[number - 1]) + 1))


def build_export(size: int, existing_clerk_ids: list[str]) -> Export:
    """`size` lines: 80 % good (half with a sessionDataId, every third with three entries,
    the first ones for users that already exist), 10 % duplicates, 10 % bad."""
    export = Export()
    existing = iter(existing_clerk_ids)
    for index in range(size):
        number = index + 1
        if index % BAD_EVERY == BAD_AT:
            bad = BAD_LINES[(index // BAD_EVERY) % len(BAD_LINES)]
            clerk_id = f"user_{uuid.uuid4().hex}"
            export.lines.append(bad.make(clerk_id))
            export.bad[number] = (clerk_id, bad)
        elif index % BAD_EVERY == DUPLICATE_AT:
            # Alternately a line with a sessionDataId and one without (skipped by its hash).
            export.lines.append(export.lines[index - (4 if (index // BAD_EVERY) % 2 else 3)])
            export.duplicates += 1
        else:
            clerk_id = next(existing, None) or f"user_{uuid.uuid4().hex}"
            entries = [entry(), entry(nuts=0), entry(cost=33.3)] if index % 3 == 0 else entry()
            session_data: dict[str, Any] = {"profile": _profile(), "dataEntry": entries}
            if index % 2 == 0:
                session_data["sessionDataId"] = f"ssd_{index}"
            export.lines.append(_line(clerk_id, session_data))
            export.good_clerk_ids.append(clerk_id)
            export.interactions += 3 if index % 3 == 0 else 1
    return export
