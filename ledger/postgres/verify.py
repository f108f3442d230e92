"""The reads of whole-database verification on PostgreSQL (``ledger.verify`` checks them), all
on one connection inside one read-only ``REPEATABLE READ`` transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from ledger import verify
from ledger.postgres.connection import Connection
from ledger.postgres.store import head_of
from ledger.verify import INDEXED_COLUMNS, Batch, EntryRow, Progress, Report

_ENTRY_QUERY = (
    "SELECT l.position, l.entry, l.leaf_hash, "
    + ", ".join(f"l.{c}" for c in INDEXED_COLUMNS)
    + ", e.position IS NOT NULL, e.salt, e.content "
    "FROM log l LEFT JOIN evidence e ON e.position = l.position "
    "WHERE l.position > %s ORDER BY l.position LIMIT %s"
)
NODES_PER_FETCH = 50_000
"""Tree nodes fetched per round trip (the nodes stream through a server-side cursor)."""


class Source:
    """What ``ledger.verify.verify_log`` reads, on ``conn`` (``ledger.verify.VerifySource``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def head(self) -> int:
        """The newest log position (0 for an empty log)."""
        return head_of(self.conn)

    def entries_after(self, position: int, limit: int) -> list[EntryRow]:
        """Up to ``limit`` entries after ``position`` with their evidence, in order (bytes
        fetched in binary)."""
        with self.conn.cursor(binary=True) as cur:
            return cur.execute(_ENTRY_QUERY, (position, limit)).fetchall()

    def orphan_evidence(self) -> int | None:
        """The first position that has evidence but no entry, if any."""
        row = self.conn.execute(
            "SELECT min(e.position) FROM evidence e LEFT JOIN log l ON l.position = e.position "
            "WHERE l.position IS NULL"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def tree_nodes(self) -> Iterable[tuple[int, int, bytes]]:
        """Every stored node, streamed in key order (completion order; within a level, index
        order)."""
        cur = self.conn.cursor(name="verify_tree_nodes", binary=True)
        cur.itersize = NODES_PER_FETCH
        cur.execute("SELECT level, idx, hash FROM tree_nodes ORDER BY node")
        return cast(Iterable[tuple[int, int, bytes]], cur)

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        """Every checkpoint as (size, root, note), by size."""
        rows = self.conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size")
        return [(int(s), bytes(r), str(n)) for s, r, n in rows]


def verify_log(
    conn: Connection,
    verifier_key: str | None,
    progress: Progress | None = None,
    each_batch: Batch | None = None,
) -> Report:
    """Verify the log, evidence, tree and checkpoints on ``conn`` (inside one transaction):
    ``ledger.verify.verify_log`` over this database."""
    return verify.verify_log(Source(conn), verifier_key, progress, each_batch)
