"""Verified JSON that PostgreSQL's JSONB, or the service's JSON parser (orjson), cannot hold:
made storable by the web, recognised by the workers (DESIGN.md sections 1 and 3).

A verified Clerk event is never refused for its content. Each offending value is replaced by a
marker string and named, with its path, in the stored payload's top-level `cpn_sync_unstorable`
list (`[{"path": "data.first_name", "problem": "holds \\u0000, ..."}]`):

- a string (or an object key) holding `\\u0000`, which JSONB refuses, or a lone UTF-16 surrogate;
- a number outside the double range (`1e400`), valid JSON that orjson refuses;
- a container nested deeper than MAX_DEPTH levels (orjson's limit): the whole container.

The original bytes are not kept: nothing in the service could use them (its columns cannot hold
`\\u0000` either), and what is not kept needs no erasure.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
from collections.abc import Iterator
from typing import Any

import orjson

UNSTORABLE_KEY = "cpn_sync_unstorable"
MAX_DEPTH = 1024  # orjson's nesting limit, the one limit of web and workers
MARKER = "<removed by cpn-sync: {problem}>"
NUL = "holds \\u0000, which PostgreSQL cannot store"
SURROGATE = "holds a lone UTF-16 surrogate, which PostgreSQL cannot store"
HUGE_NUMBER = "is a number outside the double range"
TOO_DEEP = f"is nested deeper than {MAX_DEPTH} levels"
UNSAFE_METADATA = ("data.unsafe_metadata", "data.user.unsafe_metadata")

_BASE_RECURSION_LIMIT = sys.getrecursionlimit()
_TOO_DEEP_PLACEHOLDER = "\u0000cpn-sync: too deep\u0000"
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_SURROGATES = re.compile("[\ud800-\udfff]")


class _HugeNumber:
    """What `json.loads` makes of a number outside the double range (replaced afterwards)."""


_HUGE = _HugeNumber()


def _float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _HUGE


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _cut_too_deep(text: str) -> str:
    """The text with every container that opens deeper than MAX_DEPTH replaced by a string."""
    pieces: list[str] = []
    depth = 0
    kept_from = 0
    cut_at: int | None = None
    for token in _TOKENS.finditer(text):
        symbol = token.group()
        if symbol in "[{":
            depth += 1
            if depth == MAX_DEPTH + 1 and cut_at is None:
                cut_at = token.start()
        elif symbol in "]}":
            depth -= 1
            if depth == MAX_DEPTH and cut_at is not None:
                pieces += [text[kept_from:cut_at], json.dumps(_TOO_DEEP_PLACEHOLDER)]
                kept_from, cut_at = token.end(), None
    return "".join(pieces) + text[kept_from:] if pieces else text


@contextlib.contextmanager
def _deep_recursion() -> Iterator[None]:
    """Room for MAX_DEPTH levels (the stdlib's json recurses per level). The limit is only ever
    raised, never restored: a restore could cut a second-pass parse running in another thread."""
    needed = _BASE_RECURSION_LIMIT + 3 * MAX_DEPTH
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)
    yield


def tolerant_loads(text: str) -> Any:
    """Parse JSON that orjson refused but that is valid (too deep, huge numbers, surrogates);
    `ValueError` when it is not JSON at all. The result still holds the offending values:
    `make_storable` replaces them."""
    try:
        with _deep_recursion():
            return json.loads(
                _cut_too_deep(text), parse_float=_float, parse_constant=_refuse_constant
            )
    except RecursionError:
        raise ValueError("nested too deeply to parse") from None


def _problem_of_text(value: str) -> str | None:
    if "\u0000" in value:
        return TOO_DEEP if value == _TOO_DEEP_PLACEHOLDER else NUL
    if _SURROGATES.search(value):
        return SURROGATE
    return None


def make_storable(document: Any) -> tuple[Any, list[dict[str, str]]]:
    """The document with every offending value replaced by a marker, and the problems found."""
    problems: list[dict[str, str]] = []

    def replaced(value: Any, path: str) -> Any:
        problem: str | None = None
        if value is _HUGE:
            problem = HUGE_NUMBER
        elif isinstance(value, str):
            problem = _problem_of_text(value)
        elif isinstance(value, dict):
            result = {}
            for number, (key, item) in enumerate(value.items()):
                key_problem = _problem_of_text(key)
                if key_problem is not None:
                    named = _child(path, f"<key {number}>")
                    problems.append({"path": _short(named), "problem": key_problem})
                    key = f"<removed by cpn-sync: key {number}>"
                result[key] = replaced(item, _child(path, key))
            return result
        elif isinstance(value, list):
            return [replaced(item, f"{path}[{index}]") for index, item in enumerate(value)]
        if problem is None:
            return value
        problems.append({"path": _short(path), "problem": problem})
        return MARKER.format(problem=problem)

    if not isinstance(document, dict):
        return document, problems  # not an envelope: refused as such
    with _deep_recursion():
        root = replaced(document, "")
    if problems:
        root[UNSTORABLE_KEY] = problems
    return root, problems


def _short(path: str) -> str:
    """A path as recorded: a very deep one is cut (its start says where it is)."""
    return path if len(path) <= 120 else path[:100] + "..."


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def dumps(document: Any) -> str:
    """The storable document as JSON text (stdlib: its integers may exceed 64 bits)."""
    with _deep_recursion():
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def storable_text(payload: str) -> str | None:
    """A payload orjson parsed but PostgreSQL refused (a \\u0000), made storable; None when
    nothing in it needs replacing (then the refusal has another cause)."""
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        document = tolerant_loads(payload)
    document, problems = make_storable(document)
    return dumps(document) if problems else None


def problems_of(payload: Any) -> list[dict[str, str]]:
    """The problems the web recorded in a stored payload (none for almost every event)."""
    if isinstance(payload, dict):
        found = payload.get(UNSTORABLE_KEY)
        if isinstance(found, list):
            return [item for item in found if isinstance(item, dict)]
    return []


def inside(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def outside_unsafe_metadata(problems: list[dict[str, str]]) -> list[dict[str, str]]:
    """The problems a user's row cannot do without: inside `unsafe_metadata` a user is applied
    without the replaced values (only its onboarding migration fails); anywhere else it fails."""
    return [
        problem
        for problem in problems
        if not any(inside(problem.get("path", ""), where) for where in UNSAFE_METADATA)
    ]


def describe(problems: list[dict[str, str]]) -> str:
    return "; ".join(f"{item.get('path')} {item.get('problem')}" for item in problems)
