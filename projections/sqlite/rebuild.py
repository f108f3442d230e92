"""Rebuild on SQLite: drop every projection and replay the log into it (the port's
``projections.read_model.Maintenance``).

Guarantee: after ``rebuild`` each projection equals what live appends produced (the property
tests check it); ``matches_rebuild`` answers whether that holds now without changing anything.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

from ledger.entries import decode_entry
from ledger.sqlite import schema
from ledger.sqlite.store import SqliteLogStore
from ledger.store import Committed, Projector, StoredEntry

PROJECTION_TABLES = (
    "consent_facts",
    "consent_current",
    "subaccount_versions",
    "tenant_versions",
    "review_items",
    "replies",
    "projection_positions",
)
BATCH = 20_000


@runtime_checkable
class Replaying(Protocol):
    """A projector with a faster way to replay the whole log into its empty tables."""

    def replay(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """Apply ``items`` as part of a replay (some rows may wait for ``finish_replay``)."""
        ...

    def finish_replay(self, conn: sqlite3.Connection) -> None:
        """Write what ``replay`` left out: afterwards the tables equal those of ``apply``."""
        ...


def replay(
    conn: sqlite3.Connection,
    projectors: list[Projector[sqlite3.Connection]],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Reset ``projectors`` and apply the whole log to them on ``conn``; returns entries applied.

    ``conn`` must be inside a write transaction.
    """
    count = _replay_log(conn, projectors, progress)
    _finish(conn, projectors)
    return count


def _replay_log(
    conn: sqlite3.Connection,
    projectors: list[Projector[sqlite3.Connection]],
    progress: Callable[[int], None] | None,
) -> int:
    """Reset ``projectors`` and feed them the log in batches (``finish`` still to come)."""
    for projector in projectors:
        projector.reset(conn)
    appliers = [p.replay if isinstance(p, Replaying) else p.apply for p in projectors]
    last, count = 0, 0
    while True:
        rows = conn.execute(
            "SELECT position, entry, leaf_hash FROM log WHERE position > ? ORDER BY position "
            "LIMIT ?",
            (last, BATCH),
        ).fetchall()
        if not rows:
            return count
        items = [Committed(StoredEntry(p, d, h), decode_entry(d)) for p, d, h in rows]
        for apply in appliers:
            apply(conn, items)
        last, count = rows[-1][0], count + len(rows)
        if progress:
            progress(count)


def _finish(conn: sqlite3.Connection, projectors: list[Projector[sqlite3.Connection]]) -> None:
    for projector in projectors:
        if isinstance(projector, Replaying):
            projector.finish_replay(conn)


class SqliteMaintenance:
    """The port's ``Maintenance`` on a ``SqliteLogStore`` and its projectors."""

    def __init__(self, store: SqliteLogStore) -> None:
        self._store = store

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """See ``rebuild``."""
        return rebuild(self._store, progress)

    def matches_rebuild(self) -> bool:
        """See ``matches_rebuild``."""
        return matches_rebuild(self._store)


def rebuild(store: SqliteLogStore, progress: Callable[[int], None] | None = None) -> int:
    """Drop and replay every projection in one transaction; returns the entries replayed.

    For speed, the projection tables' plain (non-unique) indexes are dropped for the replay and
    created again from their own definitions before the projectors finish and the transaction
    commits — one transaction, so a reader never sees them missing, and a crash leaves the old
    projections — and the writer's page cache (and memory map) are enlarged meanwhile.
    """
    projectors = store.projectors
    with store.write_transaction() as conn, _roomy(conn):
        with _without_indexes(conn):
            count = _replay_log(conn, projectors, progress)
        _finish(conn, projectors)
        return count


REBUILD_CACHE_KIB = 256 * 1024
"""The writer's page cache during a rebuild (the replay inserts in random index order)."""
REBUILD_MMAP_BYTES = 1 << 40
"""The writer's memory map during a rebuild: the log is read through it, not the page cache."""


@contextmanager
def _roomy(conn: sqlite3.Connection) -> Iterator[None]:
    """A large page cache and memory map on ``conn`` for a while."""
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    mmap = conn.execute("PRAGMA mmap_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = {-REBUILD_CACHE_KIB}")
    conn.execute(f"PRAGMA mmap_size = {REBUILD_MMAP_BYTES}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA mmap_size = {int(mmap)}")
        conn.execute(f"PRAGMA cache_size = {int(cache)}")


@contextmanager
def _without_indexes(conn: sqlite3.Connection) -> Iterator[None]:
    """Drop the projection tables' plain indexes; create them again from their own definitions
    on a clean exit (inside the caller's transaction)."""
    indexes = [
        (index.name, index.sql)
        for table in PROJECTION_TABLES
        for index in schema.indexes(conn, table)
        if index.sql is not None and not index.unique
    ]
    for name, _ in indexes:
        conn.execute(f'DROP INDEX main."{name}"')
    yield
    for _, sql in indexes:
        conn.execute(sql)


def projection_digest(conn: sqlite3.Connection) -> str:
    """SHA-256 over the ordered contents of every projection table."""
    digest = hashlib.sha256()
    for table in PROJECTION_TABLES:
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):  # noqa: S608
            digest.update(repr(row).encode())
        digest.update(b"\x00" + table.encode())
    return digest.hexdigest()


def matches_rebuild(store: SqliteLogStore) -> bool:
    """Whether the live projections equal a fresh replay (checked, then rolled back)."""
    with store.trial_transaction() as conn:
        live = projection_digest(conn)
        replay(conn, store.projectors)
        return projection_digest(conn) == live
