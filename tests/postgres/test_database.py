"""The PostgreSQL database's own guarantees (migrations 0001-0002), checked behind the ledger's
back: immutability enforced by triggers, dense positions, migrations applied once when several
nodes start together, and several store instances ("nodes") appending to one log."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoint import Signer
from ledger.entries import Evidence
from ledger.events import ConsentRevoked
from ledger.migrate import shipped_migrations
from ledger.postgres.store import PgLogStore
from ledger.store import Draft
from projections.postgres.engine import open_engine

IMMUTABLE = psycopg.errors.IntegrityConstraintViolation


def _draft(key: str, evidence: Evidence | None = None) -> Draft:
    return Draft(
        tenant="acme",
        key=key,
        subaccount="S_A",
        msisdn="+6581960001",
        occurred_at=None,
        event=ConsentRevoked(
            scope="subaccount",
            keyword="STOP",
            match="exact",
            policy="default@1",
            channel="sms",
            method="api",
            actor="data-subject",
        ),
        evidence=evidence,
    )


@pytest.fixture
def filled(pg_url: str) -> str:
    """A migrated schema with entries, evidence, tree nodes and a signed checkpoint."""
    engine = open_engine(pg_url)
    try:
        engine.store.append([_draft("k1", Evidence(text="STOP")), _draft("k2"), _draft("k3")])
        signer = Signer("test", Ed25519PrivateKey.generate())
        record, created = engine.checkpoints.sign(signer, "test", datetime.now(UTC))
        assert created
        assert record is not None
        assert record.size == 3
    finally:
        engine.store.close()
    return pg_url


def _refused(url: str, statement: str, params: tuple[object, ...] = ()) -> str:
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(IMMUTABLE) as refused:
        conn.execute(statement, params)
    return str(refused.value)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE log SET tenant = 'other' WHERE position = 1",
        "DELETE FROM log WHERE position = 3",
        "TRUNCATE log CASCADE",
        "UPDATE tree_nodes SET hash = hash",
        "DELETE FROM tree_nodes",
        "TRUNCATE tree_nodes",
        "UPDATE checkpoints SET note = 'forged'",
        "DELETE FROM checkpoints",
        "TRUNCATE checkpoints",
        "UPDATE signer SET verifier_key = 'other'",
        "DELETE FROM signer",
    ],
)
def test_the_log_tree_and_checkpoints_refuse_every_change(filled: str, statement: str) -> None:
    assert "immutable" in _refused(filled, statement)


def test_evidence_may_only_be_erased(filled: str) -> None:
    assert "erased" in _refused(filled, "UPDATE evidence SET content = 'x'::bytea")
    assert "immutable" in _refused(filled, "DELETE FROM evidence")
    assert "immutable" in _refused(filled, "TRUNCATE evidence")
    with psycopg.connect(filled, autocommit=True) as conn:
        conn.execute(
            "UPDATE evidence SET salt = NULL, content = NULL, erased_at = '2026-01-01T00:00:00Z', "
            "erase_reason = 'request' WHERE position = 1"
        )
    assert "erased" in _refused(
        filled, "UPDATE evidence SET erase_reason = 'another' WHERE position = 1"
    )


@pytest.mark.parametrize("position", [3, 5])  # taken, and a gap after the head (3)
def test_a_position_other_than_the_next_is_refused(filled: str, position: int) -> None:
    with psycopg.connect(filled, autocommit=True) as conn:
        row = conn.execute("SELECT * FROM log WHERE position = 1").fetchone()
    assert row is not None
    columns = "position, tenant, key, event_id, type, subaccount, msisdn, occurred_at, "
    columns += "recorded_at, entry, leaf_hash"
    message = _refused(
        filled,
        f"INSERT INTO log ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (position, row[1], f"forged-{position}", *row[3:]),
    )
    assert "dense" in message


def test_two_nodes_appending_at_once_keep_positions_dense_in_commit_order(pg_url: str) -> None:
    nodes = [PgLogStore(pg_url), PgLogStore(pg_url)]
    threads_per_node, each = 3, 40
    errors: list[BaseException] = []
    start = threading.Barrier(len(nodes) * threads_per_node)

    def work(node: PgLogStore, name: str) -> None:
        try:
            start.wait()
            for i in range(each):
                node.append([_draft(f"{name}-{i}")])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(node, f"n{n}t{t}"))
        for n, node in enumerate(nodes)
        for t in range(threads_per_node)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors
        stored = nodes[0].read_from(1, 10**6)
        total = len(nodes) * threads_per_node * each
        assert [s.position for s in stored] == list(range(1, total + 1))
        assert len({s.entry.key for s in stored}) == total
        recorded = [s.entry.recorded_at for s in stored]
        assert recorded == sorted(recorded)
        assert nodes[1].head() == total
    finally:
        for node in nodes:
            node.close()


MIGRATOR = textwrap.dedent(
    """
    import json, sys, time
    from ledger.postgres.connection import connect
    from ledger.postgres.migrate import migrate
    conn = connect(sys.argv[1])
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    print(json.dumps(migrate(conn)))
    """
)


def test_nodes_starting_together_apply_each_migration_once(pg_url: str) -> None:
    at = str(time.time() + 1.5)  # both start migrating at this moment
    children = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, pg_url, at], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    applied = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    assert all(child.returncode == 0 for child in children)
    names = [m.name for m in shipped_migrations("postgres")]
    assert sorted(applied[0] + applied[1]) == names  # each file applied by exactly one node
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
    assert [r[0] for r in rows] == names
