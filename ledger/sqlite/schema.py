"""What a SQLite database's schema holds, read with sqlite-utils: the one place product code
introspects a schema (rebuild, verification's shadow replay) instead of ``sqlite_master``
queries and ``PRAGMA`` strings of its own.

Guarantees: nothing here changes the connection (no pragma is set, no plugin hook runs) or the
database. Table names are ``main``'s; a table's columns, key and indexes are looked up by name
as SQLite resolves it, so while a TEMP table of the same name exists (a shadow copied from the
``main`` one) they are the shadow's — the same columns and key, and its UNIQUE indexes only.
"""

from __future__ import annotations

import sqlite3

import msgspec
import sqlite_utils


class IndexDefinition(msgspec.Struct, frozen=True):
    """An index of a table: its name, whether it is UNIQUE, and the ``CREATE INDEX`` statement
    that made it (``None`` for those SQLite makes for UNIQUE and PRIMARY KEY constraints, which
    come and go with their table)."""

    name: str
    unique: bool
    sql: str | None


def database(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """sqlite-utils' view of ``conn``, leaving the connection exactly as it was."""
    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)


def table_names(conn: sqlite3.Connection) -> list[str]:
    """The tables of ``main``, in creation order."""
    return [str(name) for name in database(conn).table_names()]


def _table(conn: sqlite3.Connection, table: str) -> sqlite_utils.db.Table:
    found = database(conn).table(table)
    if not found.exists():
        raise LookupError(f"there is no table {table!r}")
    return found


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The column names of ``table``, in table order (``LookupError`` if there is none)."""
    return [str(column.name) for column in _table(conn, table).columns]


def primary_key(conn: sqlite3.Connection, table: str) -> list[str]:
    """The declared primary-key columns of ``table``, in key order (empty for a table without
    one; ``LookupError`` if there is none)."""
    keyed = [c for c in _table(conn, table).columns if c.is_pk]
    return [str(c.name) for c in sorted(keyed, key=lambda c: int(c.is_pk))]


def indexes(conn: sqlite3.Connection, table: str) -> list[IndexDefinition]:
    """The indexes of ``table``, by name (``LookupError`` if there is none)."""
    found = _table(conn, table)
    made = dict(
        found.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", [table]
        ).fetchall()
    )
    return sorted(
        (IndexDefinition(str(i.name), bool(i.unique), made.get(i.name)) for i in found.indexes),
        key=lambda i: i.name,
    )
