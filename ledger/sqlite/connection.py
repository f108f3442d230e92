"""Opening the ledger's SQLite database: the one place its pragmas and file modes are set.

Guarantees: every connection is in autocommit mode (transactions are explicit), waits up to
``BUSY_TIMEOUT_MS`` for a lock, and enforces foreign keys; a writer's connection uses WAL with
``synchronous=FULL`` (an acknowledged commit survives a crash or power loss) and creates what is
missing privately (directory 0700, database 0600); a reader's connection never writes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.errors import StoreUnavailable
from ledger.files import create_private_file, make_private_dir

BUSY_TIMEOUT_MS = 30_000
"""How long a connection waits for another's lock before giving up."""
Connection = sqlite3.Connection
"""A connection of this adapter, for code that passes one along without using it."""


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with the ledger's pragmas (WAL, synchronous=FULL).

    A writer creates what is missing privately: the database's directory 0700, the database
    0600 — and so its ``-wal`` and ``-shm`` files, which SQLite creates with the database
    file's own mode.
    """
    if not readonly:
        make_private_dir(Path(path).parent)
        create_private_file(Path(path))
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        _use_wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting (like busy_timeout) while another process holds the file.

    Changing the journal mode can fail with "database is locked" at once, without calling the
    busy handler, when another process opens a fresh database at the same moment.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


@contextmanager
def unavailable_on_driver_error(doing: str) -> Iterator[None]:
    """Turn a driver error inside into ``StoreUnavailable`` ("<doing>: <driver message>"): the
    adapter's edge, past which nothing catches ``sqlite3.Error``."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"{doing}: {exc}") from exc


@contextmanager
def write_transaction(conn: Connection) -> Iterator[Connection]:
    """One write transaction on ``conn`` (``BEGIN IMMEDIATE``: one writer at a time): committed
    when the block ends, rolled back if it raises. ``StoreUnavailable`` if it cannot start."""
    with unavailable_on_driver_error("cannot start a write"):
        conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        with unavailable_on_driver_error("the write could not be committed"):
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
