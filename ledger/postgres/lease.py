"""The one-runner lease on PostgreSQL (``ledger.runner``): a session-level advisory lock held
on a connection of its own. The server frees it when that session ends — the process died, or
its connection was lost and noticed (TCP keepalives) — so another node takes the job over."""

from __future__ import annotations

import threading
from contextlib import suppress

import psycopg

from ledger.errors import StoreUnavailable
from ledger.postgres.connection import Connection, connect, lock_key
from ledger.runner import job_name


class SessionLease:
    """The lease of ``job`` on the database at ``url`` (see the module)."""

    def __init__(self, url: str, job: str) -> None:
        self.job = job_name(job)
        self._url = url
        self._conn: Connection | None = None
        self._mutex = threading.Lock()

    def held(self) -> bool:
        """Whether this process holds the lease now: its session is alive and holds the
        lock, or the lock was free and is taken now. Never waits for the lock."""
        with self._mutex:
            try:
                if self._conn is not None:
                    self._conn.execute("SELECT 1")  # the session (and so the lock) is alive
                    return True
                conn = connect(self._url)
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (lock_key(conn, f"runner/{self.job}"),)
                ).fetchone()
                if row is None or not row[0]:
                    conn.close()
                    return False
                self._conn = conn
                return True
            except (psycopg.Error, StoreUnavailable):
                self._drop()
                return False

    def release(self) -> None:
        """Give the lease up (ending the session frees the lock)."""
        with self._mutex:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
