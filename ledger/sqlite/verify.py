"""The reads of whole-database verification on SQLite (``ledger.verify`` checks them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ledger import verify
from ledger.sqlite.store import head_of
from ledger.verify import INDEXED_COLUMNS, Batch, EntryRow, Progress, Report

_ENTRY_QUERY = (
    "SELECT l.position, l.entry, l.leaf_hash, "
    + ", ".join(f"l.{c}" for c in INDEXED_COLUMNS)
    + ", e.position IS NOT NULL, e.salt, e.content "
    "FROM log l LEFT JOIN evidence e ON e.position = l.position "
    "WHERE l.position > ? ORDER BY l.position LIMIT ?"
)


class Source:
    """What ``ledger.verify.verify_log`` reads, on ``conn`` (``ledger.verify.VerifySource``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def head(self) -> int:
        """The newest log position (0 for an empty log)."""
        return head_of(self.conn)

    def entries_after(self, position: int, limit: int) -> list[EntryRow]:
        """Up to ``limit`` entries after ``position`` with their evidence, in order."""
        return self.conn.execute(_ENTRY_QUERY, (position, limit)).fetchall()

    def orphan_evidence(self) -> int | None:
        """The first position that has evidence but no entry, if any."""
        row = self.conn.execute(
            "SELECT min(e.position) FROM evidence e LEFT JOIN log l ON l.position = e.position "
            "WHERE l.position IS NULL"
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def tree_nodes(self) -> Iterable[tuple[int, int, bytes]]:
        """Every stored node, in one pass over the table (its key order is completion order;
        within a level that is index order)."""
        return self.conn.execute("SELECT level, idx, hash FROM tree_nodes ORDER BY node")

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        """Every checkpoint as (size, root, note), by size."""
        return self.conn.execute(
            "SELECT size, root, note FROM checkpoints ORDER BY size"
        ).fetchall()


def verify_log(
    conn: sqlite3.Connection,
    verifier_key: str | None,
    progress: Progress | None = None,
    each_batch: Batch | None = None,
) -> Report:
    """Verify the log, evidence, tree and checkpoints on ``conn`` (inside one transaction):
    ``ledger.verify.verify_log`` over this database."""
    return verify.verify_log(Source(conn), verifier_key, progress, each_batch)
