"""The seed document's schema, as the SQL blocks of its "New Schema Design" section."""

from __future__ import annotations

import re
from pathlib import Path

from db import models
from tests.services import SHARED

SEED_DOCUMENT = SHARED / "seeds" / "000_536c64c0fde5611b.txt"
SEED_TABLES = frozenset(models.SEED_TABLES)

_SECTION = re.compile(r"^## New Schema Design\n(.*?)(?=^## )", re.MULTILINE | re.DOTALL)
_SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)
_CREATE_TABLE = re.compile(r"CREATE TABLE (\w+)", re.IGNORECASE)


def schema_blocks(document: Path = SEED_DOCUMENT) -> list[str]:
    """The section's SQL blocks in document order: one CREATE TABLE each, with its indexes."""
    section = _SECTION.search(document.read_text())
    if section is None:
        raise ValueError(f"{document}: no '## New Schema Design' section")
    blocks = _SQL_BLOCK.findall(section.group(1))
    tables = [name for block in blocks for name in _CREATE_TABLE.findall(block)]
    if sorted(tables) != sorted(SEED_TABLES) or len(tables) != len(blocks):
        raise ValueError(f"{document}: expected one block per seed table, found {tables}")
    return list(blocks)
