"""Migrating a SQLite database: the files of ``migrations/sqlite/``, each recorded in
``schema_migrations`` (``ledger.migrate`` states the guarantees).

Concurrent starters serialise on SQLite's write lock; a driver error while applying a file
becomes ``MigrationError`` naming it, and one while reading what was applied
``StoreUnavailable``.
"""

from __future__ import annotations

import sqlite3

from ledger.errors import MigrationError, StoreUnavailable
from ledger.migrate import Migration, shipped_migrations, unapplied
from ledger.timefmt import now_text

ENGINE = "sqlite"


def _applied(conn: sqlite3.Connection) -> dict[str, str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    return dict(conn.execute("SELECT name, checksum FROM schema_migrations").fetchall())


def applied(conn: sqlite3.Connection) -> dict[str, str]:
    """The migrations the database records as applied: name → checksum."""
    try:
        return _applied(conn)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot read the applied migrations: {exc}") from exc


def pending(conn: sqlite3.Connection) -> list[Migration]:
    """Shipped migrations not yet applied; raises ``MigrationError`` on a changed/unknown file."""
    return unapplied(applied(conn), shipped_migrations(ENGINE))


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every pending migration; returns the names applied now (empty when current).

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    done: list[str] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot start a write: {exc}") from exc
    try:
        todo = pending(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for m in todo:
        if _apply(conn, m):
            done.append(m.name)
    return done


def _apply(conn: sqlite3.Connection, m: Migration) -> bool:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise MigrationError(f"migration {m.name} failed: {exc}") from exc
    try:
        if m.name in _applied(conn):  # another process got there first
            conn.execute("ROLLBACK")
            return False
        for statement in _statements(m.sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (name, checksum, applied_at) VALUES (?, ?, ?)",
            (m.name, m.checksum, now_text()),
        )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        raise MigrationError(f"migration {m.name} failed: {exc}") from exc
    return True


def _statements(sql: str) -> list[str]:
    """Split a script into complete statements (``sqlite3.complete_statement`` aware)."""
    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        if not buf and line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
