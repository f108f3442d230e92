"""The Merkle tree kept in SQLite and the checkpoints signed over it.

After appends of every shape — many batches, duplicates, failed batches, group commits from
several threads — the stored tree gives, for every size, exactly the roots and proofs that
``ledger.merkle``'s list functions give over the stored entry bytes; the proofs verify; each
checkpoint is consistent with its predecessor; signing without growth returns the same
checkpoint; ``min_interval`` is respected.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import checkpoint_log, merkle
from ledger.checkpoint import Signer, open_note
from ledger.errors import InvalidInput, RetractionError
from ledger.events import EntryRetracted, HelpRequested
from ledger.sqlite import checkpoints, tree
from ledger.sqlite.store import SqliteLogStore
from ledger.store import Draft

ORIGIN = "test.example/log"
SIGNER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def draft(key: str, tenant: str = "t") -> Draft:
    event = HelpRequested(keyword="HELP", match="exact", policy="p@1", channel="sms",
                          method="api", actor="test")  # fmt: skip
    return Draft(tenant=tenant, key=key, subaccount="S", msisdn="+6581968289",
                 occurred_at=None, event=event)  # fmt: skip


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteLogStore]:
    s = SqliteLogStore(tmp_path / "log.db")
    yield s
    s.close()


def stored_leaves(store: SqliteLogStore) -> list[bytes]:
    """The entry bytes in position order (the leaf inputs), checked dense from 1."""
    rows = store.read_from(1, 10**9)
    assert [r.position for r in rows] == list(range(1, len(rows) + 1))
    return [r.data for r in rows]


def append_concurrently(store: SqliteLogStore, rng: random.Random, threads: int = 4) -> None:
    """Several threads each append batches of random sizes, with duplicates and failures."""
    plans = [[rng.randint(1, 6) for _ in range(rng.randint(3, 8))] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(worker: int) -> None:
        barrier.wait()
        for batch, size in enumerate(plans[worker]):
            keys = [f"w{worker}-b{batch}-{i}" for i in range(size)]
            store.append([draft(k) for k in keys] + [draft(keys[0])])  # with a duplicate
            if batch % 3 == 1:  # a failing batch must leave no trace in the tree
                retract = EntryRetracted(position=10**6, reason="x", actor="test")
                bad = Draft(tenant="t", key=f"bad-{worker}-{batch}", subaccount=None,
                            msisdn=None, occurred_at=None, event=retract)  # fmt: skip
                with pytest.raises(RetractionError):
                    store.append([draft(f"w{worker}-b{batch}-lost"), bad])

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def check_every_size(store: SqliteLogStore, leaves: list[bytes], upto: int | None = None) -> None:
    """Roots, inclusion and consistency proofs of every size (up to ``upto``) equal the list
    functions over the stored bytes, and verify."""
    with store.snapshot() as conn:
        assert tree.tree_size(conn) == len(leaves)
        assert tree.root(conn, 0) == merkle.EMPTY_ROOT
        for size in range(1, min(len(leaves), upto or len(leaves)) + 1):
            prefix = leaves[:size]
            root = merkle.root_hash(prefix)
            assert tree.root(conn, size) == root
            for position in range(1, size + 1):
                proof = tree.inclusion_proof(conn, position, size)
                assert proof == merkle.inclusion_proof(position - 1, prefix)
                leaf = merkle.leaf_hash(leaves[position - 1])
                assert merkle.verify_inclusion(position - 1, size, leaf, proof, root)
            for first in range(1, size + 1):
                proof = tree.consistency_proof(conn, first, size)
                assert proof == merkle.consistency_proof(first, prefix)
                old = merkle.root_hash(leaves[:first])
                assert merkle.verify_consistency(first, size, old, root, proof)


def test_concurrent_group_commits_keep_the_tree_exact(store: SqliteLogStore) -> None:
    rng = random.Random(4)
    for _ in range(3):
        append_concurrently(store, rng)
    leaves = stored_leaves(store)
    assert 40 <= len(leaves) <= 200
    check_every_size(store, leaves)


@settings(max_examples=20)
@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=8))
def test_any_batch_shape_gives_the_same_tree(tmp_path_factory: pytest.TempPathFactory,
                                             batches: list[int]) -> None:  # fmt: skip
    store = SqliteLogStore(tmp_path_factory.mktemp("shape") / "log.db")
    try:
        n = 0
        for size in batches:
            store.append([draft(f"k{n + i}") for i in range(size)])
            n += size
        leaves = stored_leaves(store)
        with store.snapshot() as conn:
            for size in range(len(leaves) + 1):
                assert tree.root(conn, size) == merkle.root_hash(leaves[:size])
        check_every_size(store, leaves, upto=12)
    finally:
        store.close()


def test_stored_nodes_are_exactly_the_completed_subtrees(store: SqliteLogStore) -> None:
    store.append([draft(f"k{i}") for i in range(13)])
    with store.snapshot() as conn:
        nodes = sorted(conn.execute("SELECT level, idx FROM tree_nodes").fetchall())
    expected = sorted((level, i) for level in range(4) for i in range(13 >> level))
    assert nodes == expected


@pytest.mark.parametrize(
    ("position", "size"), [(0, 3), (-1, 3), (4, 3), (1, 99), (1, -1), (2**63, 2**63)]
)
def test_out_of_range_proofs_are_refused(store: SqliteLogStore, position: int, size: int) -> None:
    store.append([draft(f"k{i}") for i in range(5)])
    with store.snapshot() as conn, pytest.raises(InvalidInput):
        tree.inclusion_proof(conn, position, size)


@pytest.mark.parametrize(("first", "second"), [(0, 3), (4, 3), (1, 6), (-2, 2)])
def test_out_of_range_consistency_is_refused(
    store: SqliteLogStore, first: int, second: int
) -> None:
    store.append([draft(f"k{i}") for i in range(5)])
    with store.snapshot() as conn, pytest.raises(InvalidInput):
        tree.consistency_proof(conn, first, second)


def sign(store: SqliteLogStore, clock: FixedClock, min_interval: float | None = None
         ) -> checkpoint_log.CheckpointRecord | None:  # fmt: skip
    with store.write_transaction() as conn:
        return checkpoints.sign(conn, SIGNER, ORIGIN, clock(), min_interval=min_interval)


def test_checkpoints_are_consistent_with_their_predecessors(store: SqliteLogStore) -> None:
    clock, rng, n = FixedClock(), random.Random(9), 0
    for _ in range(12):
        grow = rng.randint(1, 7)
        store.append([draft(f"k{n + i}") for i in range(grow)])
        n += grow
        clock.advance(1)
        assert sign(store, clock) is not None
    leaves = stored_leaves(store)
    with store.snapshot() as conn:
        records = checkpoints.since(conn, 0)
    assert [r.size for r in records] == sorted({r.size for r in records})
    assert records[-1].size == n
    for record in records:
        cp = open_note(record.note, SIGNER.verifier_key)
        assert (cp.origin, cp.size, cp.root) == (ORIGIN, record.size, record.root)
        assert record.root == merkle.root_hash(leaves[: record.size])
    for older, newer in itertools.pairwise(records):
        proof = merkle.consistency_proof(older.size, leaves[: newer.size])
        assert merkle.verify_consistency(older.size, newer.size, older.root, newer.root, proof)


def test_a_second_sign_without_growth_returns_the_same_checkpoint(store: SqliteLogStore) -> None:
    clock = FixedClock()
    store.append([draft("a"), draft("b"), draft("c")])
    first = sign(store, clock)
    clock.advance(3600)
    again = sign(store, clock)
    assert again == first
    with store.snapshot() as conn:
        assert len(checkpoints.since(conn, 0)) == 1


def test_min_interval_is_respected(store: SqliteLogStore) -> None:
    clock = FixedClock()
    store.append([draft("a")])
    first = sign(store, clock, min_interval=60)
    assert first is not None
    assert first.size == 1
    store.append([draft("b")])
    clock.advance(59.9)
    assert sign(store, clock, min_interval=60) is None  # too soon: nothing signed
    clock.advance(0.1)
    second = sign(store, clock, min_interval=60)
    assert second is not None
    assert second.size == 2
    assert sign(store, clock) == second  # on demand, nothing new to sign


def test_an_empty_log_gets_a_checkpoint_of_the_empty_tree(store: SqliteLogStore) -> None:
    record = sign(store, FixedClock())
    assert record is not None
    assert (record.size, record.root) == (0, merkle.EMPTY_ROOT)
    store.append([draft("a")])
    grown = sign(store, FixedClock())
    assert grown is not None
    assert grown.size == 1


def test_checkpoints_from_two_stores_on_one_file_are_one_per_interval(tmp_path: Path) -> None:
    """Two workers (two stores on one database) signing at once: the write lock and the
    interval check inside it let exactly one sign."""
    clock = FixedClock()
    stores = [SqliteLogStore(tmp_path / "log.db") for _ in range(2)]
    try:
        signed: list[checkpoint_log.CheckpointRecord | None] = []
        for round_ in range(5):
            stores[round_ % 2].append([draft(f"k{round_}")])
            clock.advance(60)
            barrier = threading.Barrier(2)

            def worker(s: SqliteLogStore, barrier: threading.Barrier) -> None:
                barrier.wait()
                signed.append(sign(s, clock, min_interval=60))

            threads = [threading.Thread(target=worker, args=(s, barrier)) for s in stores]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        with stores[0].snapshot() as conn:
            records = checkpoints.since(conn, 0)
        assert [r.size for r in records] == [1, 2, 3, 4, 5]  # one signature per round
        # the other worker of each round got the winner's checkpoint back
        assert sorted(r.size for r in signed if r is not None) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    finally:
        for s in stores:
            s.close()


def test_sign_refuses_a_tree_inconsistent_with_the_last_checkpoint(store: SqliteLogStore) -> None:
    from ledger.errors import TamperDetected

    clock = FixedClock()
    store.append([draft("a"), draft("b")])
    assert sign(store, clock) is not None
    store.append([draft("c")])
    with store.write_transaction() as conn:
        conn.execute("DROP TRIGGER tree_nodes_no_update")
        conn.execute("UPDATE tree_nodes SET hash = ? WHERE level = 1 AND idx = 0", (b"\0" * 32,))
    with pytest.raises(TamperDetected):
        sign(store, clock)
    with store.snapshot() as conn:
        assert [r.size for r in checkpoints.since(conn, 0)] == [2]
