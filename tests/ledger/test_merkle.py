"""RFC 9162 Merkle trees: published vectors, proof properties, and the stored-node variants.

Vectors are copied from transparency-dev/merkle: ``testonly/constants.go`` (leaf inputs, node
and root hashes) and ``proof/verify_test.go`` (inclusion and consistency proofs).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import InvalidInput
from ledger.merkle import (
    EMPTY_ROOT,
    completed_nodes,
    consistency_proof,
    consistency_proof_from_nodes,
    inclusion_proof,
    inclusion_proof_from_nodes,
    leaf_hash,
    node_hash,
    root_from_nodes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

ROOT_HASHES = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (0-based leaf index, tree size, proof); verify_test.go lists 1-based leaves.
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# (old size, new size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")
MAX_SIZE = 300


# --- helpers -----------------------------------------------------------------------------------


def _leaves(n: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(n)]


@cache
def _stored_tree(n: int) -> dict[tuple[int, int], bytes]:
    return _stored_tree_of(_leaves(n))


def _stored_tree_of(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every completed node of a tree of ``leaves``, built only through ``completed_nodes``."""
    nodes: dict[tuple[int, int], bytes] = {}
    for i, data in enumerate(leaves):
        for level, index, digest in completed_nodes(i, leaf_hash(data), _getter(nodes, i)):
            nodes[(level, index)] = digest
    return nodes


def _getter(
    nodes: dict[tuple[int, int], bytes], size: int, reads: list[tuple[int, int]] | None = None
) -> Callable[[int, int], bytes]:
    """A node getter that fails on any node not completed within the first ``size`` leaves."""

    def get(level: int, index: int) -> bytes:
        assert (index + 1) << level <= size, f"read node ({level}, {index}) beyond size {size}"
        if reads is not None:
            reads.append((level, index))
        return nodes[(level, index)]

    return get


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _sides(index: int, size: int) -> tuple[str, ...]:
    """Which side each audit-path sibling sits on, leaf end first, from RFC 9162 PATH."""
    if size == 1:
        return ()
    k = _split(size)
    if index < k:
        return (*_sides(index, k), "right")
    return (*_sides(index - k, size - k), "left")


Expr = object


def _consistency_shape(old: int, new: int) -> tuple[Expr, Expr]:
    """Both roots as expressions over proof-element positions (``"old"``: the prepended root).

    Built symbolically from RFC 9162 SUBPROOF, independently of the verifier's bit arithmetic.
    """

    def ranges(m: int, lo: int, hi: int, known: bool) -> list[tuple[int, int]]:
        if m == hi:
            return [] if known else [(lo, hi)]
        mid = lo + _split(hi - lo)
        if m <= mid:
            return [*ranges(m, lo, mid, known), (mid, hi)]
        return [*ranges(m, mid, hi, False), (lo, mid)]

    names: dict[tuple[int, int], Expr] = {r: i for i, r in enumerate(ranges(old, 0, new, True))}
    if old & (old - 1) == 0:
        names[(0, old)] = "old"

    def expr(lo: int, hi: int) -> Expr:
        if (lo, hi) in names:
            return names[(lo, hi)]
        assert hi - lo > 1
        mid = lo + _split(hi - lo)
        return (expr(lo, mid), expr(mid, hi))

    return expr(0, old), expr(0, new)


def _substitute(e: Expr, old: Expr) -> Expr:
    if e == "old":
        return old
    if isinstance(e, tuple):
        return (_substitute(e[0], old), _substitute(e[1], old))
    return e


def _inclusion_claim_holds(index: int, size: int, claimed_index: int, claimed_size: int) -> bool:
    """Whether a proof for (index, size) also proves (claimed_index, claimed_size) for the same
    leaf and root: only when the claimed position has exactly the same audit-path shape."""
    if not 0 <= claimed_index < claimed_size:
        return False
    return _sides(claimed_index, claimed_size) == _sides(index, size)


def _consistency_claim_holds(old: int, new: int, claimed_old: int, claimed_new: int) -> bool:
    """Whether a proof for old < new also proves the claimed sizes for the same roots: only when
    both roots come out as the same expression over the proof."""
    if not 1 <= claimed_old < claimed_new:
        return False
    old_expr, new_expr = _consistency_shape(old, new)
    claimed_old_expr, claimed_new_expr = _consistency_shape(claimed_old, claimed_new)
    return (
        _substitute(claimed_old_expr, old_expr) == old_expr
        and _substitute(claimed_new_expr, old_expr) == new_expr
    )


def _nearby(n: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([n - 1, n + 1, n ^ 1, n ^ 2, n * 2, n // 2, 0, -1]),
        st.integers(-1, 2 * MAX_SIZE + 2),
    )


# --- published vectors -------------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    assert ROOT_HASHES[0] == EMPTY_ROOT
    assert root_hash([]) == EMPTY_ROOT
    assert root_from_nodes(0, _getter({}, 0)) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_roots_match_transparency_dev(size: int) -> None:
    assert root_hash(LEAF_INPUTS[:size]) == ROOT_HASHES[size]


def test_completed_nodes_match_transparency_dev_node_hashes() -> None:
    nodes: dict[tuple[int, int], bytes] = {}
    for i, data in enumerate(LEAF_INPUTS):
        done = completed_nodes(i, leaf_hash(data), _getter(nodes, i))
        assert done[0] == (0, i, leaf_hash(data))
        assert [level for level, _, _ in done] == list(range(len(done)))
        nodes.update({(level, index): digest for level, index, digest in done})
        assert root_from_nodes(i + 1, _getter(nodes, i + 1)) == ROOT_HASHES[i + 1]
    expected = {
        (level, index): digest
        for level, row in enumerate(NODE_HASHES)
        for index, digest in enumerate(row)
    }
    assert nodes == expected


def test_node_hash_is_domain_separated_from_leaf_hash() -> None:
    assert node_hash(NODE_HASHES[0][0], NODE_HASHES[0][1]) == NODE_HASHES[1][0]
    assert leaf_hash(NODE_HASHES[0][0] + NODE_HASHES[0][1]) != NODE_HASHES[1][0]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_vectors(index: int, size: int, proof: list[bytes]) -> None:
    leaves = LEAF_INPUTS[:size]
    assert inclusion_proof(index, leaves) == proof
    nodes = _stored_tree_of(leaves)
    assert inclusion_proof_from_nodes(index, size, _getter(nodes, size)) == proof
    leaf, root = leaf_hash(leaves[index]), ROOT_HASHES[size]
    assert verify_inclusion(index, size, leaf, proof, root)
    for probe in _corrupt_inclusion(index, size, leaf, proof, root):
        assert not verify_inclusion(*probe), probe


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_vectors(old: int, new: int, proof: list[bytes]) -> None:
    leaves = LEAF_INPUTS[:new]
    assert consistency_proof(old, leaves) == proof
    nodes = _stored_tree_of(leaves)
    assert consistency_proof_from_nodes(old, new, _getter(nodes, new)) == proof
    old_root, new_root = ROOT_HASHES[old], ROOT_HASHES[new]
    assert verify_consistency(old, new, old_root, new_root, proof)
    if proof:
        for probe in _corrupt_consistency(old, new, old_root, new_root, proof):
            assert not verify_consistency(*probe), probe


def _corrupt_inclusion(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> list[tuple[int, int, bytes, list[bytes], bytes]]:
    """The probes of verify_test.go's corruptInclusionProof."""
    probes = [
        (index - 1, size, leaf, proof, root),
        (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root),
        (index, size, b"WrongLeaf", proof, root),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, proof, SOME_HASH),
        (index, size, leaf, [*proof, b""], root),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [b"", *proof], root),
        (index, size, leaf, [root, *proof], root),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = _flip(bad[i], 3)
        probes.append((index, size, leaf, bad, root))
    if proof:
        probes.append((index, size, leaf, proof[:-1], root))
    if len(proof) > 1:
        probes.append((index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root))
    return probes


def _corrupt_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> list[tuple[int, int, bytes, bytes, list[bytes]]]:
    """The probes of verify_test.go's corruptConsistencyProof."""
    probes = [
        (old - 1, new, old_root, new_root, proof),
        (old + 1, new, old_root, new_root, proof),
        (old ^ 2, new, old_root, new_root, proof),
        (old, new * 2, old_root, new_root, proof),
        (old, new // 2, old_root, new_root, proof),
        (old, new, b"WrongRoot", new_root, proof),
        (old, new, old_root, b"WrongRoot", proof),
        (old, new, new_root, old_root, proof),
        (old, new, old_root, new_root, []),
        (old, new, old_root, new_root, [*proof, b""]),
        (old, new, old_root, new_root, [*proof, old_root]),
        (old, new, old_root, new_root, [*proof, new_root]),
        (old, new, old_root, new_root, [b"", *proof]),
        (old, new, old_root, new_root, [old_root, *proof]),
        (old, new, old_root, new_root, [new_root, *proof]),
        (old, new, old_root, new_root, [proof[0], *proof]),
        (old, new, old_root, new_root, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = _flip(bad[i], 4)
        probes.append((old, new, old_root, new_root, bad))
    return probes


def test_consistency_edge_cases() -> None:
    one, two = ROOT_HASHES[1], ROOT_HASHES[2]
    assert verify_consistency(1, 1, one, one, [])
    assert not verify_consistency(1, 1, one, two, [])  # same size, different roots
    assert not verify_consistency(1, 1, one, one, [EMPTY_ROOT])  # equal sizes need no proof
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])  # sizes start at 1
    assert not verify_consistency(0, 1, EMPTY_ROOT, one, [])
    assert not verify_consistency(2, 1, two, one, [])  # time travel
    assert not verify_consistency(1, 2, one, two, [])  # missing proof


def test_inclusion_edge_cases() -> None:
    leaf = leaf_hash(b"data")
    assert verify_inclusion(0, 1, leaf, [], leaf)
    assert not verify_inclusion(0, 1, leaf, [], b"")
    assert not verify_inclusion(0, 1, b"", [], leaf)
    for index, size in [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 1)]:
        assert not verify_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)


# --- every proof of every small tree -----------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 41))
def test_every_proof_of_small_trees_verifies_and_matches_stored_nodes(size: int) -> None:
    leaves, nodes = _leaves(size), _stored_tree(size)
    root = root_hash(leaves)
    assert root_from_nodes(size, _getter(nodes, size)) == root
    for index in range(size):
        proof = inclusion_proof(index, leaves)
        assert inclusion_proof_from_nodes(index, size, _getter(nodes, size)) == proof
        assert verify_inclusion(index, size, leaf_hash(leaves[index]), proof, root)
    for old in range(1, size + 1):
        proof = consistency_proof(old, leaves)
        assert consistency_proof_from_nodes(old, size, _getter(nodes, size)) == proof
        assert verify_consistency(old, size, root_hash(leaves[:old]), root, proof)


# --- properties over random trees --------------------------------------------------------------

sizes = st.integers(1, MAX_SIZE)


@given(st.data())
def test_stored_nodes_give_identical_roots_and_proofs(data: st.DataObject) -> None:
    n = data.draw(sizes, "tree size")
    size = data.draw(st.integers(1, n), "proof size")
    index = data.draw(st.integers(0, size - 1), "index")
    old = data.draw(st.integers(1, size), "old size")
    leaves, reads = _leaves(size), list[tuple[int, int]]()
    get = _getter(_stored_tree(n), size, reads)
    budget = 2 * size.bit_length() + 1  # O(log n) node reads, never a pass over the log
    assert root_from_nodes(size, get) == root_hash(leaves)
    assert len(reads) <= size.bit_length()
    reads.clear()
    assert inclusion_proof_from_nodes(index, size, get) == inclusion_proof(index, leaves)
    assert len(reads) <= budget
    reads.clear()
    assert consistency_proof_from_nodes(old, size, get) == consistency_proof(old, leaves)
    assert len(reads) <= budget


@given(st.data())
def test_inclusion_proofs_verify_and_any_bit_flip_fails(data: st.DataObject) -> None:
    size = data.draw(sizes, "size")
    index = data.draw(st.integers(0, size - 1), "index")
    leaves = _leaves(size)
    proof, leaf, root = inclusion_proof(index, leaves), leaf_hash(leaves[index]), root_hash(leaves)
    assert verify_inclusion(index, size, leaf, proof, root)
    bit = data.draw(st.integers(0, 255), "bit")
    assert not verify_inclusion(index, size, _flip(leaf, bit), proof, root)
    assert not verify_inclusion(index, size, leaf, proof, _flip(root, bit))
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), "element")
        bad = [_flip(p, bit) if j == i else p for j, p in enumerate(proof)]
        assert not verify_inclusion(index, size, leaf, bad, root)


@given(st.data())
def test_inclusion_proof_of_wrong_length_or_element_size_fails(data: st.DataObject) -> None:
    size = data.draw(sizes, "size")
    index = data.draw(st.integers(0, size - 1), "index")
    leaves = _leaves(size)
    proof, leaf, root = inclusion_proof(index, leaves), leaf_hash(leaves[index]), root_hash(leaves)
    extra = data.draw(st.binary(min_size=32, max_size=32), "extra element")
    assert not verify_inclusion(index, size, leaf, [*proof, extra], root)
    assert not verify_inclusion(index, size, leaf, [extra, *proof], root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), "element")
        assert not verify_inclusion(index, size, leaf, proof[:i] + proof[i + 1 :], root)
        for bad_element in (proof[i][:31], proof[i] + b"\x00"):
            bad = [bad_element if j == i else p for j, p in enumerate(proof)]
            assert not verify_inclusion(index, size, leaf, bad, root)


@given(st.data())
def test_inclusion_proof_proves_no_other_position(data: st.DataObject) -> None:
    size = data.draw(sizes, "size")
    index = data.draw(st.integers(0, size - 1), "index")
    other_index = data.draw(_nearby(index), "claimed index")
    other_size = data.draw(_nearby(size), "claimed size")
    if (other_index, other_size) == (index, size):
        return
    leaves = _leaves(size)
    proof, leaf, root = inclusion_proof(index, leaves), leaf_hash(leaves[index]), root_hash(leaves)
    expected = _inclusion_claim_holds(index, size, other_index, other_size)
    assert verify_inclusion(other_index, other_size, leaf, proof, root) is expected
    if other_size == size:
        assert not expected  # a leaf's audit path is unique within its tree


@given(st.data())
def test_consistency_proofs_verify_and_any_bit_flip_fails(data: st.DataObject) -> None:
    new = data.draw(st.integers(2, MAX_SIZE), "new size")
    old = data.draw(st.integers(1, new - 1), "old size")
    leaves = _leaves(new)
    proof = consistency_proof(old, leaves)
    old_root, new_root = root_hash(leaves[:old]), root_hash(leaves)
    assert verify_consistency(old, new, old_root, new_root, proof)
    bit = data.draw(st.integers(0, 255), "bit")
    assert not verify_consistency(old, new, _flip(old_root, bit), new_root, proof)
    assert not verify_consistency(old, new, old_root, _flip(new_root, bit), proof)
    i = data.draw(st.integers(0, len(proof) - 1), "element")
    bad = [_flip(p, bit) if j == i else p for j, p in enumerate(proof)]
    assert not verify_consistency(old, new, old_root, new_root, bad)


@given(st.data())
def test_consistency_proof_of_wrong_length_or_element_size_fails(data: st.DataObject) -> None:
    new = data.draw(st.integers(2, MAX_SIZE), "new size")
    old = data.draw(st.integers(1, new - 1), "old size")
    leaves = _leaves(new)
    proof = consistency_proof(old, leaves)
    old_root, new_root = root_hash(leaves[:old]), root_hash(leaves)
    extra = data.draw(st.binary(min_size=32, max_size=32), "extra element")
    assert not verify_consistency(old, new, old_root, new_root, [*proof, extra])
    assert not verify_consistency(old, new, old_root, new_root, [extra, *proof])
    i = data.draw(st.integers(0, len(proof) - 1), "element")
    assert not verify_consistency(old, new, old_root, new_root, proof[:i] + proof[i + 1 :])
    for bad_element in (proof[i][:31], proof[i] + b"\x00"):
        bad = [bad_element if j == i else p for j, p in enumerate(proof)]
        assert not verify_consistency(old, new, old_root, new_root, bad)


@given(st.data())
def test_consistency_proof_proves_no_other_sizes(data: st.DataObject) -> None:
    new = data.draw(st.integers(2, MAX_SIZE), "new size")
    old = data.draw(st.integers(1, new - 1), "old size")
    claimed_old = data.draw(_nearby(old), "claimed old size")
    claimed_new = data.draw(_nearby(new), "claimed new size")
    if (claimed_old, claimed_new) == (old, new):
        return
    leaves = _leaves(new)
    proof = consistency_proof(old, leaves)
    old_root, new_root = root_hash(leaves[:old]), root_hash(leaves)
    expected = _consistency_claim_holds(old, new, claimed_old, claimed_new)
    assert verify_consistency(claimed_old, claimed_new, old_root, new_root, proof) is expected


def test_proof_shape_not_size_is_what_a_proof_binds() -> None:
    """A proof binds the root, not the size: where two sizes give the same proof shape, the same
    proof and roots verify for both. Verifiers must take the size from the signed checkpoint
    that carries the root, never from the requester."""
    leaves = _leaves(5)
    proof, root = inclusion_proof(0, leaves), root_hash(leaves)
    assert verify_inclusion(0, 6, leaf_hash(leaves[0]), proof, root)
    cons = consistency_proof(6, _leaves(8))
    assert verify_consistency(6, 7, root_hash(_leaves(6)), root_hash(_leaves(8)), cons)


# --- argument checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: inclusion_proof(0, []),
        lambda: inclusion_proof(3, _leaves(3)),
        lambda: inclusion_proof(-1, _leaves(3)),
        lambda: consistency_proof(0, _leaves(3)),
        lambda: consistency_proof(4, _leaves(3)),
        lambda: inclusion_proof_from_nodes(3, 3, _getter(_stored_tree(3), 3)),
        lambda: inclusion_proof_from_nodes(-1, 3, _getter(_stored_tree(3), 3)),
        lambda: consistency_proof_from_nodes(0, 3, _getter(_stored_tree(3), 3)),
        lambda: consistency_proof_from_nodes(4, 3, _getter(_stored_tree(3), 3)),
        lambda: root_from_nodes(-1, _getter({}, 0)),
        lambda: completed_nodes(-1, SOME_HASH, _getter({}, 0)),
        lambda: completed_nodes(0, b"short", _getter({}, 0)),
    ],
)
def test_builders_refuse_out_of_range_arguments(call: Callable[[], object]) -> None:
    with pytest.raises(InvalidInput):
        call()


def test_stored_tree_holds_every_completed_node_and_nothing_more() -> None:
    for n in (1, 2, 7, 8, 100, MAX_SIZE):
        assert len(_stored_tree(n)) == 2 * n - n.bit_count()
