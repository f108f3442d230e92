"""Replay the log into shadow copies of the projection tables and compare them with the live ones.

Guarantees: ``ShadowReplay`` creates, on one connection, TEMP tables with the same names,
columns, constraints and unique indexes as every projection table
(``projections.rebuild.PROJECTION_TABLES``).
SQLite resolves unqualified names to TEMP first, so the projectors — handed this connection —
write only the shadows; the connection may (and for verification should) open the database
read-only, so the live tables and the log can never change and no write lock is taken.
``differences`` compares every shadow with its live table row for row (both ways) and names the
earliest log position whose projection rows differ (for ``consent_current``, a summary of
``consent_facts``, the latest of its differing rows: see ``_first_difference``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

from ledger.entries import Entry
from ledger.store import Committed, Projector, StoredEntry
from projections.rebuild import PROJECTION_TABLES

_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+", re.IGNORECASE)
_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+", re.IGNORECASE)


class ShadowReplay:
    """Shadow projection tables on ``conn`` and the projectors that fill them."""

    def __init__(
        self, conn: sqlite3.Connection, projectors: Sequence[Projector[sqlite3.Connection]]
    ) -> None:
        """Create the (empty) shadows on ``conn`` and reset ``projectors`` onto them."""
        self.conn = conn
        self.projectors = list(projectors)
        for table in PROJECTION_TABLES:
            _create_shadow(conn, table)
        for projector in self.projectors:
            projector.reset(conn)

    def apply(self, batch: Sequence[tuple[StoredEntry, Entry]]) -> None:
        """Apply consecutive entries, in position order, to every shadow."""
        items = [Committed(stored, entry) for stored, entry in batch]
        for projector in self.projectors:
            projector.apply(self.conn, items)

    def differences(self) -> dict[str, int]:
        """Per projection table whose shadow differs from the live table: the earliest log
        position among the differing rows (0 when the rows carry no position)."""
        found = {}
        for table in PROJECTION_TABLES:
            first = _first_difference(self.conn, table)
            if first is not None:
                found[table] = first
        return found

    def close(self) -> None:
        """Drop the shadows."""
        for table in PROJECTION_TABLES:
            self.conn.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _create_shadow(conn: sqlite3.Connection, table: str) -> None:
    """A TEMP table like ``main.<table>``: same columns and constraints, and its UNIQUE indexes
    (they decide conflicts). Plain indexes are left out: they change no result, only the speed
    of searches, and the projectors look rows up by primary key only while applying."""
    rows = conn.execute(
        "SELECT type, sql FROM main.sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
        "ORDER BY type = 'index'",
        (table,),
    ).fetchall()
    conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
    for kind, sql in rows:
        index = _CREATE_INDEX.match(sql)
        if kind == "table":
            conn.execute(_CREATE_TABLE.sub("CREATE TEMP TABLE ", sql, count=1))
        elif kind == "index" and index is not None:
            if index.group(1):  # UNIQUE; plain indexes are skipped
                conn.execute(_CREATE_INDEX.sub("CREATE UNIQUE INDEX temp.", sql, count=1))
        else:
            raise ValueError(f"projection table {table} has a {kind}; shadowing cannot copy it")


def _first_difference(conn: sqlite3.Connection, table: str) -> int | None:
    columns = [row[1] for row in conn.execute(f"PRAGMA main.table_info({table})")]
    live, shadow = f"SELECT * FROM main.{table}", f"SELECT * FROM temp.{table}"  # noqa: S608
    if table == "projection_positions":  # a projector's applied head: the next entry is bad
        pick = "min(position) + 1"
        # "applied up to 0" (after a reset) and "never applied" (a fresh database) are the same
        live, shadow = f"{live} WHERE position > 0", f"{shadow} WHERE position > 0"
    elif table == "consent_current":
        # A summary of consent_facts: an entry whose fact differs shows up among the differing
        # rows next to the (earlier) fact it displaced or let through, so the latest is named;
        # consent_facts names that entry itself.
        pick = "max(position)"
    else:
        pick = "min(position)" if "position" in columns else "0"
    keys = _primary_key(conn, table)
    if table == "projection_positions" or not keys:
        differing = f"{live} EXCEPT {shadow} UNION ALL SELECT * FROM ({shadow} EXCEPT {live})"  # noqa: S608
    else:  # the same set difference, by primary-key look-ups instead of two sorts of every row
        differing = f"{_unmatched('main', 'temp', table, keys, columns)} UNION ALL "
        differing += _unmatched("temp", "main", table, keys, columns)
    row = conn.execute(f"SELECT count(*), {pick} FROM ({differing})").fetchone()  # noqa: S608
    return None if row[0] == 0 else int(row[1] or 0)


def _primary_key(conn: sqlite3.Connection, table: str) -> list[str]:
    info = conn.execute(f"PRAGMA main.table_info({table})").fetchall()
    return [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]


def _unmatched(side: str, other: str, table: str, keys: list[str], columns: list[str]) -> str:
    """Rows of ``side.table`` that ``other.table`` lacks: no row with the same key, or one that
    differs in some column (NULLs compare equal, as in EXCEPT)."""
    on = " AND ".join(f"o.{k} = s.{k}" for k in keys)
    same = " AND ".join(f"o.{c} IS s.{c}" for c in columns)
    return (
        f"SELECT s.* FROM {side}.{table} s LEFT JOIN {other}.{table} o ON {on} "  # noqa: S608
        f"WHERE o.{keys[0]} IS NULL OR NOT ({same})"
    )
