"""Verifying a SQLite database read-only: the whole log re-hashed and the projections replayed
into TEMP shadows in one read snapshot (docs/evidence.md §8).

Guarantee: the database is opened read-only (``mode=ro``) and never created, migrated or written;
a file that is not a ledger database, or one whose schema is behind this build, is refused with
a ledger error naming it (nothing else escapes from the driver).
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from ledger.errors import InvalidInput, MigrationError
from ledger.sqlite.connection import BUSY_TIMEOUT_MS
from ledger.sqlite.migrate import pending
from ledger.sqlite.verify import verify_log
from ledger.verify import Progress
from projections.engine import Verification
from projections.sqlite.projectors import policy_version_conflicts, projectors
from projections.sqlite.shadow import ShadowReplay

_CACHE_KIB = 256 * 1024


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (a million short-lived rows make it run constantly)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def open_readonly(path: Path) -> sqlite3.Connection:
    """A connection that can read ``path`` and never write it (TEMP tables are allowed)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    return conn


def _not_a_ledger(path: Path, exc: Exception) -> InvalidInput:
    return InvalidInput(f"{path} is not a consent-ledger database ({exc})")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is not a ledger database (``sqlite3.DatabaseError``), or one whose
    schema is behind this build (``verify`` reads only; migrating is ``init``'s job)."""
    conn.execute(f"PRAGMA temp.cache_size = -{_CACHE_KIB}")  # the projection shadows
    todo = pending(conn)
    if todo:
        raise MigrationError(
            f"{path} needs {len(todo)} schema migration(s) ({todo[0].name} first); "
            "run `consent-ledger init --db` on it, then verify"
        )


def verify_database(
    path: Path, verifier: str | None, progress: Progress | None = None
) -> Verification:
    """Verify the database at ``path`` in one read snapshot, read-only, without the write lock.

    Returns the report of ``verify_log``, the projection tables that differ from a replay of
    the same entries (table -> earliest differing position) and the policy versions naming two
    policies; the replay runs as the entries are checked, into TEMP shadows
    (``projections.sqlite.shadow``), so each entry is read and decoded once. A missing file is
    refused (``InvalidInput``): verify never creates a database.
    """
    if not path.is_file():
        raise InvalidInput(f"there is no database at {path}")
    try:
        conn = open_readonly(path)
    except sqlite3.DatabaseError as exc:
        raise _not_a_ledger(path, exc) from None
    try:
        try:
            _check_schema(conn, path)
        except sqlite3.DatabaseError as exc:
            raise _not_a_ledger(path, exc) from None
        shadow = ShadowReplay(conn, projectors(strict=False))
        with _no_gc():
            conn.execute("BEGIN")
            try:
                report = verify_log(conn, verifier, progress, each_batch=shadow.apply)
                differences = shadow.differences()
                conflicts = policy_version_conflicts(conn)
            finally:
                conn.execute("ROLLBACK")
        shadow.close()
    finally:
        conn.close()
    return Verification(report, differences, conflicts)
