"""The log's Merkle tree in SQLite: completed perfect-subtree hashes, kept as entries append.

Guarantees: after an append commits, ``tree_nodes`` holds every perfect subtree the log
completes (same transaction as the entries); the root of any size, an inclusion proof and a
consistency proof then cost O(log n) node reads and hashes (``ledger.merkle``), never a pass over
the log. Leaf p−1 is the entry at position p. Nodes are keyed by the last leaf they cover
(``node_key``, migration 0008), so the nodes one append completes are stored side by side.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ledger import merkle
from ledger.errors import InvalidInput
from ledger.store import StoredEntry


def node_getter(conn: sqlite3.Connection) -> merkle.NodeGetter:
    """Reads stored node hashes on ``conn``; a missing node is a corrupt tree (``LookupError``)."""

    def get(level: int, index: int) -> bytes:
        row = conn.execute(
            "SELECT hash FROM tree_nodes WHERE node = ?", (node_key(level, index),)
        ).fetchone()
        if row is None:
            raise LookupError(f"tree node ({level}, {index}) is missing")
        return bytes(row[0])

    return get


def add_leaves(conn: sqlite3.Connection, stored: Sequence[StoredEntry]) -> None:
    """Write the nodes completed by appending ``stored`` (consecutive, after the current tree)."""
    read = node_getter(conn)
    made: dict[tuple[int, int], bytes] = {}  # nodes completed by earlier leaves of this batch

    def get(level: int, index: int) -> bytes:
        node = made.get((level, index))
        return node if node is not None else read(level, index)

    rows: list[tuple[int, int, int, bytes]] = []
    for entry in stored:
        leaf = entry.position - 1
        for level, index, digest in merkle.completed_nodes(leaf, entry.leaf_hash, get):
            made[level, index] = digest
            rows.append((leaf << _LEVEL_BITS | level, level, index, digest))
    conn.executemany("INSERT INTO tree_nodes (node, level, idx, hash) VALUES (?, ?, ?, ?)", rows)


_LEVEL_BITS = 6


def node_key(level: int, index: int) -> int:
    """The key of node (``level``, ``index``) in ``tree_nodes``: the last leaf it covers (the
    leaf whose append completes it), then its level. Nodes completed together are neighbours."""
    return (((index + 1) << level) - 1) << _LEVEL_BITS | level


def tree_size(conn: sqlite3.Connection) -> int:
    """The number of leaves in the stored tree (equals the log head when consistent)."""
    row = conn.execute(
        "SELECT node FROM tree_nodes WHERE level = 0 ORDER BY node DESC LIMIT 1"
    ).fetchone()
    return 0 if row is None else (int(row[0]) >> _LEVEL_BITS) + 1


def _check_size(conn: sqlite3.Connection, size: int) -> None:
    have = tree_size(conn)
    if not 0 <= size <= have:
        raise InvalidInput(f"tree size {size} is out of range (the log has {have} entries)")


def root(conn: sqlite3.Connection, size: int) -> bytes:
    """The RFC 9162 root of the first ``size`` entries."""
    _check_size(conn, size)
    return merkle.root_from_nodes(size, node_getter(conn))


def inclusion_proof(conn: sqlite3.Connection, position: int, size: int) -> list[bytes]:
    """The inclusion proof of the entry at ``position`` in the tree of ``size`` entries."""
    _check_size(conn, size)
    if not 1 <= position <= size:
        raise InvalidInput(
            f"position {position} is not in a tree of size {size} (need 1 ≤ position ≤ size)"
        )
    return merkle.inclusion_proof_from_nodes(position - 1, size, node_getter(conn))


def consistency_proof(conn: sqlite3.Connection, first: int, second: int) -> list[bytes]:
    """The consistency proof between the trees of ``first`` and ``second`` entries."""
    _check_size(conn, second)
    if not 1 <= first <= second:
        raise InvalidInput(f"need 1 ≤ first ≤ second; got first={first}, second={second}")
    return merkle.consistency_proof_from_nodes(first, second, node_getter(conn))
