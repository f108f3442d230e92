"""Console sessions in SQLite (the ``console_sessions`` table): the SQL of
``ledger.store.SessionTable``.

Guarantees: only the SHA-256 of a session token is stored; an expired or ended session is never
returned; a driver error becomes ``StoreUnavailable`` (nothing was written).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from ledger.sqlite.connection import unavailable_on_driver_error
from ledger.store import ConsoleSession

_COLUMNS = "token_sha256, key_id, csrf_token, created_at, expires_at"


class SqliteSessions:
    """The ``SessionTable`` port: reads on this thread's reader, writes in a write
    transaction of their own."""

    def __init__(
        self,
        reader: sqlite3.Connection,
        write: Callable[[], AbstractContextManager[sqlite3.Connection]],
    ) -> None:
        self._reader = reader
        self._write = write

    def start(self, session: ConsoleSession, now: str) -> None:
        """See ``ledger.store.SessionTable``."""
        with (
            unavailable_on_driver_error("the session could not be stored"),
            self._write() as conn,
        ):
            conn.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (now,))
            conn.execute(
                f"INSERT INTO console_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608
                (
                    session.token_sha256,
                    session.key_id,
                    session.csrf_token,
                    session.created_at,
                    session.expires_at,
                ),
            )

    def get(self, token_sha256: bytes, now: str) -> ConsoleSession | None:
        """See ``ledger.store.SessionTable``."""
        with unavailable_on_driver_error("the session could not be read"):
            row = self._reader.execute(
                f"SELECT {_COLUMNS} FROM console_sessions "  # noqa: S608
                "WHERE token_sha256 = ? AND expires_at > ?",
                (token_sha256, now),
            ).fetchone()
        if row is None:
            return None
        digest, key_id, csrf, created_at, expires_at = row
        return ConsoleSession(
            token_sha256=bytes(digest),
            key_id=str(key_id),
            csrf_token=str(csrf),
            created_at=str(created_at),
            expires_at=str(expires_at),
        )

    def end(self, token_sha256: bytes) -> bool:
        """See ``ledger.store.SessionTable``."""
        with unavailable_on_driver_error("the session could not be ended"), self._write() as conn:
            cur = conn.execute(
                "DELETE FROM console_sessions WHERE token_sha256 = ?", (token_sha256,)
            )
        return cur.rowcount > 0
