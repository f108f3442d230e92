"""Migrating a PostgreSQL database: the files of ``migrations/postgres/``, each recorded in
``schema_migrations`` (``ledger.migrate`` states the guarantees).

Concurrent starters (several nodes starting together) serialise on a session advisory lock
held while migrating, so no file is ever applied twice; each file runs in one transaction with
its record. A driver error while applying a file becomes ``MigrationError`` naming it, and one
while reading what was applied ``StoreUnavailable``.
"""

from __future__ import annotations

import psycopg

from ledger.errors import MigrationError
from ledger.migrate import Migration, shipped_migrations, unapplied
from ledger.postgres.connection import Connection, lock_key, unavailable_on_driver_error
from ledger.timefmt import format_time

ENGINE = "postgresql"
FOLDER = "postgres"
_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(name text PRIMARY KEY, checksum text NOT NULL, applied_at text NOT NULL)"
)


def applied(conn: Connection) -> dict[str, str]:
    """The migrations the database records as applied: name → checksum (none on a database
    the ledger never migrated)."""
    with unavailable_on_driver_error("cannot read the applied migrations"):
        found = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if found is None or found[0] is None:
            return {}
        rows = conn.execute("SELECT name, checksum FROM schema_migrations").fetchall()
    return {str(name): str(checksum) for name, checksum in rows}


def pending(conn: Connection) -> list[Migration]:
    """Shipped migrations not yet applied; ``MigrationError`` on a changed/unknown file."""
    return unapplied(applied(conn), shipped_migrations(FOLDER))


def migrate(conn: Connection) -> list[str]:
    """Apply every pending migration under the migration lock; the names applied now.

    ``conn`` must be in autocommit mode.
    """
    with unavailable_on_driver_error("cannot take the migration lock"):
        key = lock_key(conn, "migrate")
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        with unavailable_on_driver_error("cannot prepare the migrations table"):
            conn.execute(_TABLE)
        done = []
        for m in pending(conn):
            _apply(conn, m)
            done.append(m.name)
        return done
    finally:
        with unavailable_on_driver_error("cannot release the migration lock"):
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _apply(conn: Connection, m: Migration) -> None:
    try:
        with conn.transaction():
            conn.execute(m.sql.encode())
            now = conn.execute("SELECT clock_timestamp()").fetchone()
            assert now is not None  # the database's clock, as every "now" on PostgreSQL
            conn.execute(
                "INSERT INTO schema_migrations (name, checksum, applied_at) VALUES (%s, %s, %s)",
                (m.name, m.checksum, format_time(now[0])),
            )
    except psycopg.Error as exc:
        raise MigrationError(f"migration {m.name} failed: {exc}") from exc
