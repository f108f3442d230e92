"""Console sessions in PostgreSQL (the ``console_sessions`` table): the SQL of
``ledger.store.SessionTable``.

Guarantees: only the SHA-256 of a session token is stored; an expired or ended session is never
returned; a driver error becomes ``StoreUnavailable`` (nothing was written).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from ledger.postgres.connection import Connection, unavailable_on_driver_error
from ledger.store import ConsoleSession

_COLUMNS = "token_sha256, key_id, csrf_token, created_at, expires_at"


class PgSessions:
    """The ``SessionTable`` port on the connections ``borrow`` lends (pooled, autocommit)."""

    def __init__(self, borrow: Callable[[], AbstractContextManager[Connection]]) -> None:
        self._borrow = borrow

    def start(self, session: ConsoleSession, now: str) -> None:
        """See ``ledger.store.SessionTable``."""
        with (
            self._borrow() as conn,
            unavailable_on_driver_error("the session could not be stored"),
            conn.transaction(),
        ):
            conn.execute("DELETE FROM console_sessions WHERE expires_at <= %s", (now,))
            conn.execute(
                f"INSERT INTO console_sessions ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s)",  # noqa: S608
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
        with self._borrow() as conn, unavailable_on_driver_error("the session could not be read"):
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM console_sessions "  # noqa: S608
                "WHERE token_sha256 = %s AND expires_at > %s",
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
        with self._borrow() as conn, unavailable_on_driver_error("the session could not be ended"):
            cur = conn.execute(
                "DELETE FROM console_sessions WHERE token_sha256 = %s", (token_sha256,)
            )
        return cur.rowcount > 0
