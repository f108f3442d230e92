"""Schema migrations: numbered SQL files in the ``migrations`` package, applied in order.

Guarantees: each file is applied once, inside one transaction together with its record in
``schema_migrations`` (name, SHA-256 checksum); concurrent starters serialise on the write lock
and never apply a file twice; a database whose applied file has since changed (or that has
applied a file this build does not ship) is refused with ``MigrationError`` naming the file.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from ledger.errors import MigrationError
from ledger.timefmt import now_text

_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True)
class Migration:
    """One shipped SQL file."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 hex of the file's bytes."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def shipped_migrations() -> list[Migration]:
    """The SQL files shipped in the ``migrations`` package, in number order."""
    files = [f for f in resources.files("migrations").iterdir() if _NAME.fullmatch(f.name)]
    return [Migration(f.name, f.read_text("utf-8")) for f in sorted(files, key=lambda f: f.name)]


def _applied(conn: sqlite3.Connection) -> dict[str, str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    return dict(conn.execute("SELECT name, checksum FROM schema_migrations").fetchall())


def pending(conn: sqlite3.Connection) -> list[Migration]:
    """Shipped migrations not yet applied; raises ``MigrationError`` on a changed/unknown file."""
    applied = _applied(conn)
    shipped = shipped_migrations()
    names = {m.name for m in shipped}
    for name in applied:
        if name not in names:
            raise MigrationError(f"database has migration {name} that this build does not ship")
    for m in shipped:
        if m.name in applied and applied[m.name] != m.checksum:
            raise MigrationError(
                f"migration {m.name} was changed after it was applied "
                f"(checksum {applied[m.name][:12]}… in the database, {m.checksum[:12]}… shipped)"
            )
    return [m for m in shipped if m.name not in applied]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every pending migration; returns the names applied now (empty when current).

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    done: list[str] = []
    conn.execute("BEGIN IMMEDIATE")
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
    conn.execute("BEGIN IMMEDIATE")
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
