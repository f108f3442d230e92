"""API keys in SQLite (the ``api_keys`` table): the SQL of ``api.keys``, which owns what a key
is (its format, scopes and hashing).

Guarantees: only the SHA-256 of a key's secret is stored; a revocation is kept (a key is never
deleted); a driver error becomes ``StoreUnavailable`` (nothing was written).
"""

from __future__ import annotations

import sqlite3

from ledger.sqlite.connection import unavailable_on_driver_error
from ledger.store import KEY_COLUMNS, KeyRecord, key_record

_COLUMNS = KEY_COLUMNS


def add_key(conn: sqlite3.Connection, record: KeyRecord) -> None:
    """Store a new key."""
    with unavailable_on_driver_error("the key could not be stored"):
        conn.execute(
            f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                record.id,
                record.tenant,
                ",".join(record.scopes),
                record.secret_sha256,
                record.label,
                record.created_at,
                record.revoked_at,
            ),
        )


def all_keys(conn: sqlite3.Connection) -> list[KeyRecord]:
    """Every key, oldest first (by creation time, then id)."""
    with unavailable_on_driver_error("the keys could not be read"):
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id"  # noqa: S608
        ).fetchall()
    return [key_record(r) for r in rows]


def key_by_id(conn: sqlite3.Connection, key_id: str) -> KeyRecord | None:
    """The key ``key_id``, revoked or not; ``None`` when there is none."""
    with unavailable_on_driver_error("the key could not be read"):
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?",  # noqa: S608
            (key_id,),
        ).fetchone()
    return None if row is None else key_record(row)


def revoke_key(conn: sqlite3.Connection, key_id: str, at: str) -> bool:
    """Revoke key ``key_id`` as of ``at``; whether an unrevoked key of that id existed."""
    with unavailable_on_driver_error("the key could not be revoked"):
        cur = conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (at, key_id),
        )
    return cur.rowcount > 0


def has_keys(conn: sqlite3.Connection) -> bool:
    """Whether any key was ever created."""
    with unavailable_on_driver_error("the keys could not be read"):
        return conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None


class SqliteKeys:
    """The ``KeyTable`` port on one connection (a reader, or a write transaction's)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, record: KeyRecord) -> None:
        """See ``ledger.store.KeyTable``."""
        add_key(self._conn, record)

    def all(self) -> list[KeyRecord]:
        """See ``ledger.store.KeyTable``."""
        return all_keys(self._conn)

    def by_id(self, key_id: str) -> KeyRecord | None:
        """See ``ledger.store.KeyTable``."""
        return key_by_id(self._conn, key_id)

    def revoke(self, key_id: str, at: str) -> bool:
        """See ``ledger.store.KeyTable``."""
        return revoke_key(self._conn, key_id, at)

    def any(self) -> bool:
        """See ``ledger.store.KeyTable``."""
        return has_keys(self._conn)
