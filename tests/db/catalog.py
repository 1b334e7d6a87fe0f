"""A table's shape as PostgreSQL's catalogs describe it, and the differences between two shapes.

A snapshot is a flat mapping `(table, kind, key) -> description`, where every description is the
catalog's own rendering (`format_type`, `pg_get_expr`, `pg_get_constraintdef`), so two databases
built from different SQL texts compare equal exactly when PostgreSQL sees the same schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

FactKey = tuple[str, str, str]
Snapshot = dict[FactKey, str]
PRESENT = ""  # the description of a fact whose key says it all (an index's coverage)

_COLUMNS = """
SELECT c.relname, a.attname,
       format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
         || CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
         || CASE WHEN a.attgenerated = 's'
                 THEN ' GENERATED ALWAYS AS ' || pg_get_expr(d.adbin, d.adrelid) || ' STORED'
                 WHEN d.adbin IS NOT NULL
                 THEN ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid)
                 ELSE '' END
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relname = ANY(%(tables)s) AND c.relnamespace = 'public'::regnamespace
  AND a.attnum > 0 AND NOT a.attisdropped
"""

_CHECKS = """
SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE k.contype = 'c' AND c.relname = ANY(%(tables)s)
  AND c.relnamespace = 'public'::regnamespace
"""

_FOREIGN_KEYS = """
SELECT c.relname,
       '(' || (SELECT string_agg(a.attname, ', ' ORDER BY u.ord)
               FROM unnest(k.conkey) WITH ORDINALITY u(num, ord)
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num) || ')',
       'REFERENCES ' || k.confrelid::regclass::text || '('
         || (SELECT string_agg(a.attname, ', ' ORDER BY u.ord)
             FROM unnest(k.confkey) WITH ORDINALITY u(num, ord)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num) || ')'
         || ' ON DELETE ' || r.delete_rule || ' ON UPDATE ' || r.update_rule
         || ' AS ' || k.conname
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN information_schema.referential_constraints r
  ON r.constraint_name = k.conname AND r.constraint_schema = 'public'
WHERE k.contype = 'f' AND c.relname = ANY(%(tables)s)
  AND c.relnamespace = 'public'::regnamespace
"""

_INDEXES = """
SELECT c.relname, ic.relname,
       '(' || (SELECT string_agg(pg_get_indexdef(i.indexrelid, n, true), ', ' ORDER BY n)
               FROM generate_series(1, i.indnkeyatts) n) || ')',
       pg_get_expr(i.indpred, i.indrelid),
       i.indisunique,
       CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint'
            ELSE CASE WHEN i.indisunique THEN 'unique index' ELSE 'index' END END,
       am.amname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')
WHERE c.relname = ANY(%(tables)s) AND c.relnamespace = 'public'::regnamespace
"""


def user_tables(conn: psycopg.Connection[Any]) -> set[str]:
    """Every ordinary table of the public schema except Alembic's bookkeeping."""
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') "
        "AND relnamespace = 'public'::regnamespace AND relname <> 'alembic_version'"
    ).fetchall()
    return {str(row[0]) for row in rows}


def snapshot(conn: psycopg.Connection[Any], tables: Iterable[str]) -> Snapshot:
    """Columns, CHECKs, foreign keys, unique column sets and indexes of `tables`."""
    params = {"tables": sorted(tables)}
    facts: Snapshot = {}
    for table, column, description in conn.execute(_COLUMNS, params):
        facts[(str(table), "column", str(column))] = str(description)
    for table, name, definition in conn.execute(_CHECKS, params):
        facts[(str(table), "check", str(name))] = str(definition)
    for table, columns, description in conn.execute(_FOREIGN_KEYS, params):
        facts[(str(table), "foreign key", str(columns))] = str(description)
    for table, name, columns, predicate, unique, role, method in conn.execute(_INDEXES, params):
        where = f" WHERE {predicate}" if predicate else ""
        facts[(str(table), "index", str(name))] = f"{role} USING {method} {columns}{where}"
        coverage = f"{'unique' if unique else 'non-unique'} {columns}{where}"
        facts[(str(table), "coverage", coverage)] = PRESENT
        if unique and not predicate:
            facts[(str(table), "unique", str(columns))] = PRESENT
    return facts


@dataclass(frozen=True, order=True)
class Difference:
    """One fact that two databases do not share."""

    table: str
    kind: str
    key: str
    left: str | None
    right: str | None
    names: tuple[str, str] = ("seed", "head")

    def __str__(self) -> str:
        where = f"{self.table} {self.kind} {self.key}"
        left, right = self.names
        if self.right is None:
            return f"{where}: only in {left}" + (f" ({self.left})" if self.left else "")
        if self.left is None:
            return f"{where}: only in {right}" + (f" ({self.right})" if self.right else "")
        return f"{where}: {left} {self.left!r} != {right} {self.right!r}"


def compare(
    left: Mapping[FactKey, str],
    right: Mapping[FactKey, str],
    names: tuple[str, str] = ("seed", "head"),
) -> list[Difference]:
    """Every fact that differs, sorted by table, kind and key; `names` label the two sides."""
    return sorted(
        Difference(*key, left.get(key), right.get(key), names)
        for key in left.keys() | right.keys()
        if left.get(key) != right.get(key)
    )


def unexplained(
    differences: Iterable[Difference], allowed: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """(differences not in `allowed`, entries of `allowed` that no longer occur)."""
    found = [str(difference) for difference in differences]
    return [text for text in found if text not in allowed], sorted(allowed.keys() - set(found))
