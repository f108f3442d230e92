"""Rebuild: drop every projection and replay the log into it.

Guarantee: after ``rebuild`` each projection equals what live appends produced (the property
tests check it); ``matches_rebuild`` answers whether that holds now without changing anything.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ledger.entries import decode_entry
from ledger.sqlite_store import Committed, Projector
from ledger.store import StoredEntry
from projections.ledger import ConsentLedger

PROJECTION_TABLES = (
    "consent_facts",
    "consent_current",
    "subaccount_versions",
    "tenant_versions",
    "review_items",
    "projection_positions",
)
BATCH = 20_000


def replay(
    conn: sqlite3.Connection,
    projectors: list[Projector],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Reset ``projectors`` and apply the whole log to them on ``conn``; returns entries applied.

    ``conn`` must be inside a write transaction.
    """
    for projector in projectors:
        projector.reset(conn)
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
        for projector in projectors:
            projector.apply(conn, items)
        last, count = rows[-1][0], count + len(rows)
        if progress:
            progress(count)


def rebuild(ledger: ConsentLedger, progress: Callable[[int], None] | None = None) -> int:
    """Drop and replay every projection in one transaction; returns the entries replayed.

    For speed, the projection tables' plain (non-unique) indexes are dropped for the replay and
    created again from their own definitions before the commit — one transaction, so a reader
    never sees them missing — and the writer's page cache is enlarged meanwhile.
    """
    with ledger.store.write_transaction() as conn, _bulk_load(conn):
        return replay(conn, ledger.store.projectors, progress)


REBUILD_CACHE_KIB = 256 * 1024
"""The writer's page cache during a rebuild (the replay inserts in random index order)."""


@contextmanager
def _bulk_load(conn: sqlite3.Connection) -> Iterator[None]:
    tables = ",".join("?" * len(PROJECTION_TABLES))
    indexes = conn.execute(
        f"SELECT name, sql FROM main.sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({tables}) AND sql NOT LIKE 'CREATE UNIQUE%'",
        PROJECTION_TABLES,
    ).fetchall()
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = {-REBUILD_CACHE_KIB}")
    try:
        for name, _ in indexes:
            conn.execute(f'DROP INDEX main."{name}"')
        yield
        for _, sql in indexes:
            conn.execute(sql)
    finally:
        conn.execute(f"PRAGMA cache_size = {int(cache)}")


def projection_digest(conn: sqlite3.Connection) -> str:
    """SHA-256 over the ordered contents of every projection table."""
    digest = hashlib.sha256()
    for table in PROJECTION_TABLES:
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):
            digest.update(repr(row).encode())
        digest.update(b"\x00" + table.encode())
    return digest.hexdigest()


def matches_rebuild(ledger: ConsentLedger) -> bool:
    """Whether the live projections equal a fresh replay (checked, then rolled back)."""
    with ledger.store.trial_transaction() as conn:
        live = projection_digest(conn)
        replay(conn, ledger.store.projectors)
        return projection_digest(conn) == live
