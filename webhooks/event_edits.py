"""`cpn-sync send --set data.first_name=Bob`: change one value of the event before it is signed.

A path is dotted keys into the envelope (`data.first_name`), with list positions as numbers
(`data.email_addresses.0.email_address`). The value is read as JSON when it is JSON (`42`,
`true`, `null`, `{"a": 1}`, `"123"`), else taken as text.
"""

from __future__ import annotations

from typing import Any

import orjson


class EditError(ValueError):
    """A `--set` that cannot be applied; the message names the path, never the value."""


def parse_value(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def apply_edit(event: Any, assignment: str) -> None:
    """Set `path=value` in `event`, creating missing objects on the way."""
    path, separator, raw = assignment.partition("=")
    keys = path.strip().split(".")
    if not separator or not all(keys):
        raise EditError(f"--set {path!r}: expected PATH=VALUE, e.g. data.first_name=Bob")
    target = event
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[: depth + 1])
        if isinstance(target, list):
            if not key.isdigit() or int(key) >= len(target):
                raise EditError(f"--set {path}: {where} is not a position in the list")
            if last:
                target[int(key)] = parse_value(raw)
            else:
                target = target[int(key)]
        elif isinstance(target, dict):
            if last:
                target[key] = parse_value(raw)
            else:
                target = target.setdefault(key, {})
        else:
            raise EditError(f"--set {path}: {'.'.join(keys[:depth])} is not an object or a list")
