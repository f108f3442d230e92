"""The log's Merkle tree in SQLite (``tree_nodes``): the node reads and writes of
``ledger.tree``.

Nodes are keyed by the last leaf they cover (``node_key``, migration 0008), so the nodes one
append completes are stored side by side.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ledger import merkle
from ledger import tree as pure
from ledger.store import StoredEntry
from ledger.tree import LEVEL_BITS, node_key


class Nodes:
    """The stored tree on ``conn`` (``ledger.tree.TreeNodes``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
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
            "SELECT hash FROM tree_nodes WHERE node = ?", (node_key(level, index),)
        ).fetchone()
        if row is None:
            raise LookupError(f"tree node ({level}, {index}) is missing")
        return bytes(row[0])


def node_getter(conn: sqlite3.Connection) -> merkle.NodeGetter:
    """Reads stored node hashes on ``conn``; a missing node is a corrupt tree (``LookupError``)."""
    return Nodes(conn).node


def add_leaves(conn: sqlite3.Connection, stored: Sequence[StoredEntry]) -> None:
    """Write the nodes completed by appending ``stored`` (consecutive, after the current tree)."""
    rows = [
        (leaf << LEVEL_BITS | level, level, index, digest)
        for leaf, level, index, digest in pure.completed(stored, node_getter(conn))
    ]
    conn.executemany("INSERT INTO tree_nodes (node, level, idx, hash) VALUES (?, ?, ?, ?)", rows)


def tree_size(conn: sqlite3.Connection) -> int:
    """The number of leaves in the stored tree (equals the log head when consistent)."""
    return Nodes(conn).size()


def root(conn: sqlite3.Connection, size: int) -> bytes:
    """The RFC 9162 root of the first ``size`` entries (``ledger.tree.root``)."""
    return pure.root(Nodes(conn), size)


def inclusion_proof(conn: sqlite3.Connection, position: int, size: int) -> list[bytes]:
    """The inclusion proof of the entry at ``position`` in the tree of ``size`` entries."""
    return pure.inclusion_proof(Nodes(conn), position, size)


def consistency_proof(conn: sqlite3.Connection, first: int, second: int) -> list[bytes]:
    """The consistency proof between the trees of ``first`` and ``second`` entries."""
    return pure.consistency_proof(Nodes(conn), first, second)
