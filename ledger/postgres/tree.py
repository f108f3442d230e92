"""The log's Merkle tree in PostgreSQL (``tree_nodes``): the node reads and writes of
``ledger.tree``, keyed as in every adapter (``ledger.tree.node_key``)."""

from __future__ import annotations

from collections.abc import Sequence

from ledger import tree as pure
from ledger.postgres.connection import Connection
from ledger.store import StoredEntry
from ledger.tree import LEVEL_BITS, node_key


class Nodes:
    """The stored tree on ``conn`` (``ledger.tree.TreeNodes``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def size(self) -> int:
        """The number of leaves in the stored tree (equals the log head when consistent)."""
        row = self.conn.execute(
            "SELECT node FROM tree_nodes WHERE level = 0 ORDER BY node DESC LIMIT 1"
        ).fetchone()
        return 0 if row is None else (int(row[0]) >> LEVEL_BITS) + 1

    def node(self, level: int, index: int) -> bytes:
        """A stored node hash; a missing node is a corrupt tree (``LookupError``)."""
        row = self.conn.execute(
            "SELECT hash FROM tree_nodes WHERE node = %s", (node_key(level, index),)
        ).fetchone()
        if row is None:
            raise LookupError(f"tree node ({level}, {index}) is missing")
        return bytes(row[0])


def add_leaves(conn: Connection, stored: Sequence[StoredEntry]) -> None:
    """Write the nodes completed by appending ``stored`` (consecutive, after the current tree),
    in one statement: no pipeline (``executemany``) inside the log lock's transaction, where a
    node frozen between a pipeline's statements would keep the lock (``ledger.postgres.store``)."""
    rows = [
        (leaf << LEVEL_BITS | level, level, index, digest)
        for leaf, level, index, digest in pure.completed(stored, Nodes(conn).node)
    ]
    if rows:
        conn.execute(
            "INSERT INTO tree_nodes (node, level, idx, hash) "
            "SELECT * FROM unnest(%s::bigint[], %s::integer[], %s::bigint[], %s::bytea[])",
            [list(column) for column in zip(*rows, strict=True)],
        )
