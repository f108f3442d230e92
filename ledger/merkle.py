"""RFC 9162 §2.1 Merkle tree hashing, proofs and proof verification, with SHA-256.

Guarantees: roots and proofs are byte-identical to RFC 9162 (and so to RFC 6962 logs and
transparency-dev/merkle); the ``*_from_nodes`` functions return exactly what the list functions
return for the same leaves while reading only O(log n) stored node hashes; the ``verify_*``
functions never raise and accept a proof only if every element and its length are right.

A leaf is addressed by its 0-based index; the ledger's entry at position p is leaf p-1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ledger.errors import InvalidInput

HASH_SIZE = 32
"""Length in bytes of every hash this module produces or accepts."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""Root hash of the empty tree: SHA-256 of the empty string."""

NodeGetter = Callable[[int, int], bytes]
"""``(level, index) -> hash`` of a completed perfect subtree covering leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes."""

_RangeHash = Callable[[int, int], bytes]  # (lo, hi) -> MTH of leaves [lo, hi)


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 hash of one leaf input: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# --- proofs over a list of leaf inputs ---------------------------------------------------------


def root_hash(leaf_inputs: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash (MTH) of ``leaf_inputs``; ``EMPTY_ROOT`` for no leaves."""
    if not leaf_inputs:
        return EMPTY_ROOT
    return _list_ranges(leaf_inputs)(0, len(leaf_inputs))


def inclusion_proof(index: int, leaf_inputs: Sequence[bytes]) -> list[bytes]:
    """Return the RFC 9162 inclusion proof (audit path) of leaf ``index``, leaf end first.

    Raises ``InvalidInput`` unless ``0 <= index < len(leaf_inputs)``.
    """
    _check_index(index, len(leaf_inputs))
    return _path(index, 0, len(leaf_inputs), _list_ranges(leaf_inputs))


def consistency_proof(old_size: int, leaf_inputs: Sequence[bytes]) -> list[bytes]:
    """Return the RFC 9162 consistency proof from the first ``old_size`` leaves to all of them.

    Equal sizes give ``[]``. Raises ``InvalidInput`` unless ``1 <= old_size <= len(leaf_inputs)``.
    """
    _check_sizes(old_size, len(leaf_inputs))
    return _subproof(old_size, 0, len(leaf_inputs), True, _list_ranges(leaf_inputs))


# --- proofs over stored perfect-subtree hashes ------------------------------------------------


def completed_nodes(
    leaf_index: int, leaf_hash: bytes, get_node: NodeGetter
) -> list[tuple[int, int, bytes]]:
    """Return every ``(level, index, hash)`` completed by appending leaf ``leaf_index``.

    The leaf itself comes first (level 0), then each ancestor it completes, lowest first.
    ``get_node`` is asked only for left siblings, which earlier appends completed.
    Raises ``InvalidInput`` for a negative index or a hash that is not 32 bytes.
    """
    if leaf_index < 0 or len(leaf_hash) != HASH_SIZE:
        raise InvalidInput("a leaf needs an index >= 0 and a 32-byte hash")
    level, index, digest = 0, leaf_index, leaf_hash
    done = [(level, index, digest)]
    while index & 1:
        digest = node_hash(get_node(level, index - 1), digest)
        level, index = level + 1, index >> 1
        done.append((level, index, digest))
    return done


def root_from_nodes(size: int, get_node: NodeGetter) -> bytes:
    """Return the root of the first ``size`` leaves, equal to ``root_hash`` of those leaves.

    Reads at most one stored node per set bit of ``size``. Raises ``InvalidInput`` if ``size < 0``.
    """
    if size < 0:
        raise InvalidInput(f"tree size {size} is negative")
    if size == 0:
        return EMPTY_ROOT
    return _node_ranges(get_node)(0, size)


def inclusion_proof_from_nodes(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """Return ``inclusion_proof(index, leaves[:size])`` using O(log size) stored nodes.

    Raises ``InvalidInput`` unless ``0 <= index < size``.
    """
    _check_index(index, size)
    return _path(index, 0, size, _node_ranges(get_node))


def consistency_proof_from_nodes(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    """Return ``consistency_proof(old_size, leaves[:new_size])`` using O(log new_size) nodes.

    Raises ``InvalidInput`` unless ``1 <= old_size <= new_size``.
    """
    _check_sizes(old_size, new_size)
    return _subproof(old_size, 0, new_size, True, _node_ranges(get_node))


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) --------------------------------------------


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return True iff ``proof`` puts ``leaf_hash`` at ``index`` in the tree (``size``, ``root``).

    Never raises: an index outside ``[0, size)``, a hash that is not 32 bytes, or a proof of the
    wrong length or with any altered element gives False.
    """
    if not 0 <= index < size or not _all_hashes([leaf_hash, root, *proof]):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Return True iff ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix of
    (``new_size``, ``new_root``).

    Equal sizes need an empty proof and equal roots. Never raises: ``old_size < 1``,
    ``old_size > new_size``, a hash that is not 32 bytes, or a proof of the wrong length or with any
    altered element gives False.
    """
    if not 1 <= old_size <= new_size or not _all_hashes([old_root, new_root, *proof]):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


# --- internals ---------------------------------------------------------------------------------


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _path(index: int, lo: int, hi: int, subtree: _RangeHash) -> list[bytes]:
    """RFC 9162 PATH(index, D[lo:hi]) with absolute leaf positions."""
    if hi - lo == 1:
        return []
    mid = lo + _split(hi - lo)
    if index < mid:
        return [*_path(index, lo, mid, subtree), subtree(mid, hi)]
    return [*_path(index, mid, hi, subtree), subtree(lo, mid)]


def _subproof(old: int, lo: int, hi: int, known: bool, subtree: _RangeHash) -> list[bytes]:
    """RFC 9162 SUBPROOF(old, D[lo:hi], known) with absolute leaf positions."""
    if old == hi:
        return [] if known else [subtree(lo, hi)]
    mid = lo + _split(hi - lo)
    if old <= mid:
        return [*_subproof(old, lo, mid, known, subtree), subtree(mid, hi)]
    return [*_subproof(old, mid, hi, False, subtree), subtree(lo, mid)]


def _list_ranges(leaf_inputs: Sequence[bytes]) -> _RangeHash:
    """MTH of leaf ranges computed from the leaf inputs themselves."""
    hashes = [leaf_hash(data) for data in leaf_inputs]

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return hashes[lo]
        mid = lo + _split(hi - lo)
        return node_hash(mth(lo, mid), mth(mid, hi))

    return mth


def _node_ranges(get_node: NodeGetter) -> _RangeHash:
    """MTH of leaf ranges read from stored perfect subtrees.

    Every range the RFC recursion asks for starts at a multiple of the power of two at or above
    its width, so it is the fold, from the right, of its aligned perfect pieces, largest first.
    """

    def mth(lo: int, hi: int) -> bytes:
        pieces = []
        while lo < hi:
            level = (hi - lo).bit_length() - 1
            pieces.append(get_node(level, lo >> level))
            lo += 1 << level
        digest = pieces.pop()
        while pieces:
            digest = node_hash(pieces.pop(), digest)
        return digest

    return mth


def _all_hashes(values: Sequence[bytes]) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)


def _check_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise InvalidInput(f"leaf index {index} is not in a tree of size {size}")


def _check_sizes(old_size: int, new_size: int) -> None:
    if not 1 <= old_size <= new_size:
        raise InvalidInput(f"no consistency proof from size {old_size} to size {new_size}")
