"""The log's Merkle tree as a store keeps it: completed perfect-subtree hashes, written as
entries append, whatever the engine.

Guarantees: after an append commits, the store holds every perfect subtree the log completes
(same transaction as the entries); the root of any size, an inclusion proof and a consistency
proof then cost O(log n) node reads and hashes (``ledger.merkle``), never a pass over the log.
Leaf p−1 is the entry at position p. The store only fetches nodes (``TreeNodes``); sizes are
checked and proofs built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ledger import merkle
from ledger.errors import InvalidInput
from ledger.store import StoredEntry

LEVEL_BITS = 6
"""Bits of a stored node's key that hold its level (``node_key``)."""


def node_key(level: int, index: int) -> int:
    """The key of node (``level``, ``index``) in every adapter's ``tree_nodes``: the last leaf
    it covers (the leaf whose append completes it), then its level. Nodes completed together
    are neighbours."""
    return (((index + 1) << level) - 1) << LEVEL_BITS | level


class TreeNodes(Protocol):
    """A store's stored tree, as the tree logic reads it."""

    def size(self) -> int:
        """The number of leaves in the stored tree (equals the log head when consistent)."""
        ...

    def node(self, level: int, index: int) -> bytes:
        """The stored hash of node (``level``, ``index``); ``LookupError`` when it is missing
        (a corrupt tree)."""
        ...


NewNode = tuple[int, int, int, bytes]
"""A node an append completes: (the leaf whose append completes it, level, index, hash)."""


def completed(stored: Sequence[StoredEntry], read: merkle.NodeGetter) -> list[NewNode]:
    """The nodes completed by appending ``stored`` (consecutive, right after the tree ``read``
    reads), in completion order."""
    made: dict[tuple[int, int], bytes] = {}  # nodes completed by earlier leaves of this batch

    def get(level: int, index: int) -> bytes:
        node = made.get((level, index))
        return node if node is not None else read(level, index)

    out: list[NewNode] = []
    for entry in stored:
        leaf = entry.position - 1
        for level, index, digest in merkle.completed_nodes(leaf, entry.leaf_hash, get):
            made[level, index] = digest
            out.append((leaf, level, index, digest))
    return out


def _check_size(nodes: TreeNodes, size: int) -> None:
    have = nodes.size()
    if not 0 <= size <= have:
        raise InvalidInput(f"tree size {size} is out of range (the log has {have} entries)")


def root(nodes: TreeNodes, size: int) -> bytes:
    """The RFC 9162 root of the first ``size`` entries."""
    _check_size(nodes, size)
    return merkle.root_from_nodes(size, nodes.node)


def inclusion_proof(nodes: TreeNodes, position: int, size: int) -> list[bytes]:
    """The inclusion proof of the entry at ``position`` in the tree of ``size`` entries."""
    _check_size(nodes, size)
    if not 1 <= position <= size:
        raise InvalidInput(
            f"position {position} is not in a tree of size {size} (need 1 ≤ position ≤ size)"
        )
    return merkle.inclusion_proof_from_nodes(position - 1, size, nodes.node)


def consistency_proof(nodes: TreeNodes, first: int, second: int) -> list[bytes]:
    """The consistency proof between the trees of ``first`` and ``second`` entries."""
    _check_size(nodes, second)
    if not 1 <= first <= second:
        raise InvalidInput(f"need 1 ≤ first ≤ second; got first={first}, second={second}")
    return merkle.consistency_proof_from_nodes(first, second, nodes.node)
