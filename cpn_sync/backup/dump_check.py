"""What `restore` accepts: exactly the lines a data-only plain-SQL `pg_dump` of the backed-up
tables writes, and nothing else.

psql runs whatever it reads, and its meta-commands (`\\!`, `\\o |`, `\\copy ... program`) run
shell commands, anywhere on a line; `COPY ... FROM PROGRAM` does so on the server. So every line
outside table data must have one of the shapes pg_dump gives it (comments, `SET name = value;`,
`SELECT pg_catalog.set_config(...)` / `setval(...)`, `COPY <table> (<columns>) FROM stdin;` of a
backed-up table, and pg_dump 17+'s `\\restrict KEY` / `\\unrestrict KEY`); inside a COPY block
every line is data, up to the `\\.` line that ends it. A refusal names the line number only:
the line may hold personal data.

Why a check rather than pg_dump's custom format (which cannot carry a shell command): the plain
format is the seed's, stays readable and diffable, and every backup written so far stays
restorable as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from cpn_sync.backup.dump import BackupError

_END_OF_DATA = b"\\."
_SHAPES = [
    re.compile(rb"--( [^\\]*)?"),
    re.compile(rb"SET [a-z_]+ = ('[A-Za-z0-9_ .,-]*'|[A-Za-z0-9_.-]+(, [A-Za-z0-9_.-]+)*);"),
    re.compile(rb"SELECT pg_catalog\.set_config\('search_path', '', false\);"),
    re.compile(rb"SELECT pg_catalog\.setval\('[A-Za-z0-9_.\"]+', \d+, (true|false)\);"),
    re.compile(rb"\\(restrict|unrestrict) [A-Za-z0-9]+"),
]
_COPY = re.compile(rb'COPY ("?[A-Za-z0-9_]+"?)\.("?[A-Za-z0-9_]+"?) \([^()\\;]*\) FROM stdin;')


class DumpRefusedError(BackupError):
    def __init__(self, dump_file: Path, line_number: int, what: str) -> None:
        self.line_number = line_number
        super().__init__(
            f"restore refused: {dump_file} line {line_number} is {what}, not what "
            "`cpn-sync backup` (pg_dump) writes; nothing was loaded"
        )


def checked_lines(
    dump_file: Path, lines: Iterable[bytes], tables: frozenset[str]
) -> Iterator[bytes]:
    """The dump's lines, as they are, each checked before it is passed on: raises
    `DumpRefusedError` at the first line pg_dump would not write (so a caller that streams
    must abandon what it passed on)."""
    in_data = False
    number = 0
    for number, line in enumerate(lines, start=1):
        body = line.removesuffix(b"\n")
        if b"\r" in body or b"\0" in body:
            raise DumpRefusedError(dump_file, number, "a line with a raw control character")
        if in_data:
            if body == _END_OF_DATA:
                in_data = False
            elif body.startswith(_END_OF_DATA):
                raise DumpRefusedError(dump_file, number, "an end-of-data marker with more")
        elif not body.strip():
            pass
        elif copy := _COPY.fullmatch(body):
            if copy.group(2).strip(b'"').decode() not in tables:
                raise DumpRefusedError(dump_file, number, "a COPY into a table not backed up")
            in_data = True
        elif not any(shape.fullmatch(body) for shape in _SHAPES):
            what = "a psql meta-command" if b"\\" in body else "a statement"
            raise DumpRefusedError(dump_file, number, what)
        yield line
    if in_data:
        raise DumpRefusedError(dump_file, number, "inside unfinished table data (cut short)")


def check_dump(dump_file: Path, tables: frozenset[str]) -> None:
    """Read the whole file once; raise `DumpRefusedError` unless every line is pg_dump's."""
    with dump_file.open("rb") as source:
        for _line in checked_lines(dump_file, source, tables):
            pass
