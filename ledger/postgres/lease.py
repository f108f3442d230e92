"""The one-runner lease on PostgreSQL (``ledger.runner``): a session-level advisory lock held
on a connection of its own. The server frees it when that session ends — the process died, its
connection was lost and noticed (TCP keepalives), or the process stopped answering: the lease's
session is ended by the server once idle for ``IDLE_SESSION_TIMEOUT`` (PostgreSQL 14 and
later), and a live holder's heartbeat (every ``HEARTBEAT_SECONDS``) keeps it from idling. So a
frozen holder (SIGSTOP, a paused VM: its kernel still answers keepalives) gives the job up
within that time-out, and another node takes it over."""

from __future__ import annotations

import threading
import time
from contextlib import suppress

import psycopg

from ledger.errors import StoreUnavailable
from ledger.postgres.connection import Connection, connect, lock_key
from ledger.runner import job_name

HEARTBEAT_SECONDS = 2.0
IDLE_SESSION_TIMEOUT = "10s"
"""How long a holder may stop answering before the server ends its session (freeing the job);
five missed heartbeats."""
IDLE_SESSION_TIMEOUT_SINCE = 140000
"""The first server version (``server_version_num``) with ``idle_session_timeout``."""


class SessionLease:
    """The lease of ``job`` on the database at ``url`` (see the module)."""

    def __init__(self, url: str, job: str) -> None:
        self.job = job_name(job)
        self._url = url
        self._conn: Connection | None = None
        self._mutex = threading.Lock()
        self._beating = False  # a heartbeat thread runs for the current session

    def held(self) -> bool:
        """Whether this process holds the lease now: its session is alive and holds the
        lock, or the lock was free and is taken now. Never waits for the lock."""
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.execute("SELECT 1")  # the session (and so the lock) is alive
                    return True
                except psycopg.Error:
                    self._drop()  # the session ended: the lock may be free again
            try:
                return self._take()
            except (psycopg.Error, StoreUnavailable):
                self._drop()
                return False

    def release(self) -> None:
        """Give the lease up (ending the session frees the lock)."""
        with self._mutex:
            self._drop()

    def _take(self) -> bool:
        conn = connect(self._url)
        try:
            if conn.info.server_version >= IDLE_SESSION_TIMEOUT_SINCE:
                conn.execute(f"SET idle_session_timeout = '{IDLE_SESSION_TIMEOUT}'")
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (lock_key(conn, f"runner/{self.job}"),)
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        if row is None or not row[0]:
            conn.close()
            return False
        self._conn = conn
        if not self._beating:
            self._beating = True
            threading.Thread(target=self._heartbeat, name=f"lease-{self.job}", daemon=True).start()
        return True

    def _heartbeat(self) -> None:
        """Keep the lease's session from idling out while this process runs; ends with it."""
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self._mutex:
                if self._conn is None:
                    self._beating = False
                    return
                try:
                    self._conn.execute("SELECT 1")
                except psycopg.Error:
                    self._drop()
                    self._beating = False
                    return

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
