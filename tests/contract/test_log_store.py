"""The log store contract (docs/evidence.md §1), run against every adapter.

Each adapter joins by adding a parameter to ``store_factory``: a factory that opens a fresh store
(with an optional clock) and reads the indexed columns it keeps beside the entry bytes. Tests that
reach into one adapter's internals (SQLite triggers, migrations, its group-commit queue) are in
the ``TestSqlite…`` classes at the end.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg.rows import dict_row

from ledger.entries import (
    Evidence,
    decode_entry,
    decode_evidence,
    encode_entry,
    encode_evidence,
    evidence_matches,
)
from ledger.errors import InvalidInput, MigrationError, RetractionError, Stale
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    EntryRetracted,
    Event,
    SubaccountConfigured,
)
from ledger.keywords import KeywordChanges
from ledger.postgres.store import PgLogStore
from ledger.sqlite.connection import connect
from ledger.sqlite.migrate import migrate
from ledger.sqlite.store import SqliteLogStore
from ledger.store import Appended, Draft, LogStore, StoredEntry, Unchanged

from ..pg_util import create_schema, drop_schema, require_server
from .conftest import ENGINES

Clock = Callable[[], datetime]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
INDEXED = ("tenant", "key", "event_id", "type", "subaccount", "msisdn", "occurred_at")


class SqliteFactory:
    """Opens SQLite log stores on one file in a temporary directory."""

    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"
        self.opened: list[SqliteLogStore] = []

    def __call__(self, clock: Clock | None = None) -> SqliteLogStore:
        store = SqliteLogStore(self.path, clock=clock) if clock else SqliteLogStore(self.path)
        self.opened.append(store)
        return store

    def indexed_columns(self, store: LogStore) -> list[dict[str, Any]]:
        """Every log row's indexed columns (and position, recorded time, leaf hash)."""
        conn = sqlite3.connect(self.path)
        try:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                f"SELECT position, {', '.join(INDEXED)}, recorded_at, leaf_hash FROM log "
                "ORDER BY position"
            ).fetchall()
            return [dict(r) for r in rows]
        finally:
            conn.close()

    def close(self) -> None:
        for store in self.opened:
            store.close()


class PgFactory:
    """Opens PostgreSQL log stores on one fresh schema."""

    name = "postgresql"

    def __init__(self) -> None:
        require_server()
        self.schema, self.url = create_schema()
        self.opened: list[PgLogStore] = []

    def __call__(self, clock: Clock | None = None) -> PgLogStore:
        store = PgLogStore(self.url, clock=clock)
        self.opened.append(store)
        return store

    def indexed_columns(self, store: LogStore) -> list[dict[str, Any]]:
        """Every log row's indexed columns (and position, recorded time, leaf hash)."""
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            return conn.execute(
                f"SELECT position, {', '.join(INDEXED)}, recorded_at, leaf_hash FROM log "
                "ORDER BY position"
            ).fetchall()

    def close(self) -> None:
        for store in self.opened:
            store.close()
        drop_schema(self.schema)


Factory = SqliteFactory | PgFactory


@pytest.fixture(params=ENGINES)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """A factory of fresh stores of one adapter (all opened on the same database)."""
    factory: Factory = SqliteFactory(tmp_path) if request.param == "sqlite" else PgFactory()
    yield factory
    factory.close()


@pytest.fixture
def store(store_factory: Factory) -> LogStore:
    return store_factory()


# -- helpers ----------------------------------------------------------------------------------


def opt_out(subaccount: str = "ACME_MKT", scope: str = "subaccount") -> ConsentRevoked:
    return ConsentRevoked(
        scope=scope,  # type: ignore[arg-type]
        keyword="STOP",
        match="exact",
        policy="default@1",
        channel="sms",
        method="api",
        actor="data-subject",
    )


def opt_in() -> ConsentGranted:
    return ConsentGranted(
        scope="subaccount",
        keyword="START",
        match="exact",
        policy="default@1",
        channel="sms",
        method="api",
        actor="data-subject",
    )


def configured() -> SubaccountConfigured:
    return SubaccountConfigured(
        default_region="SG",
        mode="standard",
        unknown="allow",
        keywords=KeywordChanges(),
        policy_version=1,
        actor="admin:1",
        method="admin",
    )


def draft(
    key: str,
    *,
    tenant: str = "acme",
    event: Event | None = None,
    msisdn: str | None = "+6581968289",
    subaccount: str | None = "ACME_MKT",
    occurred_at: str | None = "2026-02-01T10:00:00.000Z",
    evidence: Evidence | None = None,
) -> Draft:
    return Draft(
        tenant=tenant,
        key=key,
        subaccount=subaccount,
        msisdn=msisdn,
        occurred_at=occurred_at,
        event=event if event is not None else opt_out(),
        evidence=evidence,
    )


def retraction(key: str, position: int, tenant: str = "acme") -> Draft:
    return Draft(
        tenant=tenant,
        key=key,
        subaccount=None,
        msisdn=None,
        occurred_at=None,
        event=EntryRetracted(position=position, reason="entered in error", actor="admin:1"),
    )


def everything(store: LogStore) -> list[StoredEntry]:
    return store.read_from(1, 10**9)


def positions(store: LogStore) -> list[int]:
    return [s.position for s in everything(store)]


def in_one_group(store: SqliteLogStore, calls: Sequence[Callable[[], object]]) -> list[object]:
    """Run ``calls`` in threads so that all of them land in one group commit.

    Holds the store's write lock until every call has queued its ticket; whichever thread then
    takes the lock commits the whole queue. Returns each call's result or raised exception.
    """
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with store._write_lock:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(store.group_commit.pending) < len(calls):
            assert time.monotonic() < deadline, "tickets were not queued"
            time.sleep(0.001)
    for t in threads:
        t.join(10)
    return results


# -- positions and recorded time --------------------------------------------------------------


def test_empty_store_has_head_zero(store: LogStore) -> None:
    assert store.head() == 0
    assert everything(store) == []


def test_positions_start_at_one_and_are_dense(store: LogStore) -> None:
    first = store.append([draft("k1")])
    batch = store.append([draft("k2"), draft("k3", event=opt_in()), draft("k4")])
    assert [a.position for a in first] == [1]
    assert [a.position for a in batch] == [2, 3, 4]
    assert not any(a.duplicate for a in first + batch)
    assert positions(store) == [1, 2, 3, 4]
    assert store.head() == 4
    for stored in everything(store):
        assert stored.entry.position == stored.position


def test_read_from_and_read_number(store: LogStore) -> None:
    store.append(
        [draft(f"k{i}", msisdn="+6581968289" if i % 2 else "+6591234567") for i in range(6)]
    )
    assert [s.position for s in store.read_from(3, 2)] == [3, 4]
    assert [s.position for s in store.read_from(6, 10)] == [6]
    assert store.read_from(7, 10) == []
    assert [s.position for s in store.read_number("acme", "+6581968289")] == [2, 4, 6]
    assert store.read_number("other", "+6581968289") == []


def test_recorded_time_never_decreases_even_if_the_clock_does(
    store_factory: Factory,
) -> None:
    readings = iter(
        [T0, T0 - timedelta(hours=1), T0 + timedelta(seconds=1), T0 - timedelta(days=1)]
    )
    store = store_factory(clock=lambda: next(readings))
    for i in range(4):
        store.append([draft(f"k{i}")])
    recorded = [s.entry.recorded_at for s in everything(store)]
    assert recorded == sorted(recorded)
    assert recorded[0] == "2026-03-01T09:00:00.000Z"
    assert recorded[2] == "2026-03-01T09:00:01.000Z"


def test_recorded_time_is_the_occurred_time_when_none_is_given(store: LogStore) -> None:
    [appended] = store.append([draft("cfg", event=configured(), msisdn=None, occurred_at=None)])
    entry = appended.stored.entry
    assert entry.occurred_at == entry.recorded_at


# -- idempotency ------------------------------------------------------------------------------


def test_known_key_returns_the_original_and_writes_nothing(store: LogStore) -> None:
    [original] = store.append([draft("8x8:umid-1")])
    before = everything(store)
    [again] = store.append([draft("8x8:umid-1", event=opt_in(), msisdn="+6591234567")])
    assert again.duplicate
    assert again.position == original.position
    assert again.stored == original.stored  # the original bytes, not the new request
    assert everything(store) == before
    assert store.head() == 1


def test_same_key_twice_in_one_batch(store: LogStore) -> None:
    results = store.append([draft("k"), draft("k", event=opt_in()), draft("other")])
    assert [(a.position, a.duplicate) for a in results] == [(1, False), (1, True), (2, False)]
    assert results[1].stored == results[0].stored
    assert positions(store) == [1, 2]


def test_same_key_in_another_tenant_is_not_a_duplicate(store: LogStore) -> None:
    [a] = store.append([draft("shared-key", tenant="acme")])
    [b] = store.append([draft("shared-key", tenant="globex")])
    assert not b.duplicate
    assert (a.position, b.position) == (1, 2)
    [c] = store.append([draft("shared-key", tenant="globex")])
    assert c.duplicate
    assert c.position == 2


def test_duplicate_in_a_mixed_batch_keeps_the_new_entries(store: LogStore) -> None:
    store.append([draft("a")])
    results = store.append([draft("b"), draft("a"), draft("c")])
    assert [(r.position, r.duplicate) for r in results] == [(2, False), (1, True), (3, False)]


# -- bytes, hashes and indexed columns --------------------------------------------------------


def test_stored_bytes_are_canonical_and_hashed(store: LogStore) -> None:
    store.append(
        [
            draft("k1", evidence=Evidence(text="STOP", raw_body='{"body":"STOP"}')),
            draft("k2", event=configured(), msisdn=None, occurred_at=None),
            draft("k3", event=opt_out(scope="tenant"), subaccount=None),
        ]
    )
    store.append([retraction("k4", 1)])
    for stored in everything(store):
        assert encode_entry(decode_entry(stored.data)) == stored.data
        assert stored.leaf_hash == hashlib.sha256(b"\x00" + stored.data).digest()


def test_append_results_are_what_is_read_back(store: LogStore) -> None:
    results = store.append([draft("k1"), draft("k2", event=opt_in())])
    assert [r.stored for r in results] == everything(store)


def test_indexed_columns_equal_the_fields_in_the_bytes(
    store_factory: Factory, store: LogStore
) -> None:
    store.append(
        [
            draft("k1"),
            draft("k2", event=configured(), msisdn=None, occurred_at=None),
            draft("k3", event=opt_out(scope="tenant"), subaccount=None, tenant="globex"),
        ]
    )
    store.append([retraction("k4", 1)])
    stored = {s.position: s for s in everything(store)}
    rows = store_factory.indexed_columns(store)
    assert [r["position"] for r in rows] == [1, 2, 3, 4]
    for row in rows:
        entry = stored[row["position"]].entry
        for column in (*INDEXED, "recorded_at"):
            assert row[column] == getattr(entry, column), column
        assert bytes(row["leaf_hash"]) == stored[row["position"]].leaf_hash
    assert [r["type"] for r in rows] == [
        "consent.revoked",
        "subaccount.configured",
        "consent.revoked",
        "entry.retracted",
    ]


# -- evidence ---------------------------------------------------------------------------------


def test_evidence_digest_matches_salted_content(store: LogStore) -> None:
    evidence = Evidence(raw_body='{"payload":{"body":"STOP"}}', text="STOP", remote_addr="10.0.0.9")
    [with_evidence, without] = store.append([draft("k1", evidence=evidence), draft("k2")])
    entry = with_evidence.stored.entry
    salt, content = store.evidence([1])[1]
    assert salt is not None
    assert content is not None
    assert len(salt) >= 16
    assert decode_evidence(content) == evidence
    assert content == encode_evidence(evidence)
    expected = base64.b64encode(hashlib.sha256(salt + content).digest()).decode()
    assert entry.evidence_digest == expected
    assert evidence_matches(entry.evidence_digest, salt, content)
    assert not evidence_matches(entry.evidence_digest, salt, content + b" ")
    # the personal data is beside the entry, never in it
    assert b"10.0.0.9" not in with_evidence.stored.data
    assert without.stored.entry.evidence_digest is None
    assert 2 not in store.evidence([2])


def test_same_evidence_gets_a_different_salt(store: LogStore) -> None:
    evidence = Evidence(text="STOP")
    a, b = store.append([draft("k1", evidence=evidence), draft("k2", evidence=evidence)])
    assert a.stored.entry.evidence_digest != b.stored.entry.evidence_digest


def test_evidence_can_be_erased_and_the_entry_stays(store: LogStore) -> None:
    [appended] = store.append([draft("k1", evidence=Evidence(text="STOP", profile_name="Ann"))])
    before = everything(store)
    store.erase_evidence(1, "data subject request")
    assert store.evidence([1]) == {1: (None, None)}
    assert everything(store) == before  # bytes, digest and leaf hash untouched
    assert appended.stored.entry.evidence_digest is not None
    from ledger.errors import NotFound

    with pytest.raises(NotFound):
        store.erase_evidence(1, "again")


# -- retractions ------------------------------------------------------------------------------


def test_retraction_of_a_consent_entry(store: LogStore) -> None:
    store.append([draft("k1")])
    [r] = store.append([retraction("r1", 1)])
    assert r.position == 2
    assert r.stored.entry.event == EntryRetracted(
        position=1, reason="entered in error", actor="admin:1"
    )


@pytest.mark.parametrize("case", ["no such position", "other tenant", "config entry", "twice"])
def test_bad_retraction_raises_and_writes_nothing(store: LogStore, case: str) -> None:
    store.append([draft("k1"), draft("cfg", event=configured(), msisdn=None, occurred_at=None)])
    store.append([draft("g1", tenant="globex")])
    store.append([retraction("r-ok", 1)])
    bad = {
        "no such position": retraction("bad", 99),
        "other tenant": retraction("bad", 3, tenant="acme"),
        "config entry": retraction("bad", 2),
        "twice": retraction("bad", 1),
    }[case]
    before = everything(store)
    with pytest.raises(RetractionError):
        store.append([draft("would-be-fine"), bad])
    assert everything(store) == before
    # the key was not used up: the same key can be appended later
    [later] = store.append([draft("would-be-fine")])
    assert not later.duplicate
    assert later.position == 5


def test_retraction_of_an_entry_earlier_in_the_same_batch(store: LogStore) -> None:
    results = store.append([draft("k1"), retraction("r1", 1)])
    assert [r.position for r in results] == [1, 2]
    with pytest.raises(RetractionError):
        store.append([retraction("r2", 1)])


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_appends_are_dense_and_unique(store: LogStore) -> None:
    threads_n, per_thread = 8, 200
    results: dict[int, list[Appended]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def worker(n: int) -> None:
        try:
            start.wait()
            results[n] = [store.append([draft(f"t{n}-{i}")])[0] for i in range(per_thread)]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    total = threads_n * per_thread
    got = [a.position for rs in results.values() for a in rs]
    assert sorted(got) == list(range(1, total + 1))
    assert not any(a.duplicate for rs in results.values() for a in rs)
    stored = everything(store)
    assert [s.position for s in stored] == list(range(1, total + 1))
    by_key = {s.entry.key: s.position for s in stored}
    for n, rs in results.items():
        assert [by_key[f"t{n}-{i}"] for i in range(per_thread)] == [a.position for a in rs]
        assert [a.position for a in rs] == sorted(a.position for a in rs)  # per-thread order kept
    recorded = [s.entry.recorded_at for s in stored]
    assert recorded == sorted(recorded)


def test_two_store_instances_on_one_database_share_positions(
    store_factory: Factory,
) -> None:
    a, b = store_factory(), store_factory()
    a.append([draft("a1")])
    b.append([draft("b1")])
    [dup] = a.append([draft("b1")])
    assert dup.duplicate
    assert dup.position == 2
    assert positions(a) == positions(b) == [1, 2]


# -- SQLite adapter specifics -----------------------------------------------------------------


def test_an_occurred_time_after_the_recorded_time_is_clamped_and_kept(store: LogStore) -> None:
    """A fact is never dated after the ledger knew it: an opt-out whose request names a time
    ahead of the store's clock is in force from the moment it is recorded, and the entry keeps
    the time the request named."""
    ahead = store.append([draft("k-ahead", occurred_at="2999-01-01T00:00:00.000Z")])[0]
    entry = ahead.stored.entry
    assert entry.occurred_at == entry.recorded_at
    assert entry.occurred_at_requested == "2999-01-01T00:00:00.000Z"
    usual = store.append([draft("k-usual")])[0].stored
    assert usual.entry.occurred_at == "2026-02-01T10:00:00.000Z"
    assert usual.entry.occurred_at_requested is None
    assert b"occurred_at_requested" not in usual.data  # entries without it keep their bytes
    assert usual.data.startswith(b'{"v":1,')
    assert store.read_positions([ahead.position])[0].data == ahead.stored.data


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteLogStore]:
    store = SqliteLogStore(tmp_path / "store.db")
    yield store
    store.close()


class TestSqliteGroupCommit:
    def test_bad_retraction_fails_alone_in_its_group(self, sqlite_store: SqliteLogStore) -> None:
        store = sqlite_store
        store.append([draft("k1"), draft("cfg", event=configured(), msisdn=None, occurred_at=None)])
        store.append([draft("g1", tenant="globex"), retraction("r0", 1)])
        head = store.head()  # 4
        calls: list[Callable[[], object]] = [
            lambda: store.append([draft("good-1"), draft("good-2", event=opt_in())]),
            lambda: store.append([draft("bad-none"), retraction("x1", 99)]),
            lambda: store.append([draft("bad-tenant"), retraction("x2", 3)]),
            lambda: store.append([draft("bad-config"), retraction("x3", 2)]),
            lambda: store.append([draft("bad-twice"), retraction("x4", 1)]),
            lambda: store.append([draft("good-3")]),
        ]
        results = in_one_group(store, calls)
        for bad in results[1:5]:
            assert isinstance(bad, RetractionError), bad
        good = [r for r in (results[0], results[5]) if isinstance(r, list)]
        assert len(good) == 2, results
        new_positions = sorted(a.position for rs in good for a in rs)
        assert new_positions == [head + 1, head + 2, head + 3]
        keys = [s.entry.key for s in everything(store)]
        assert not {"bad-none", "bad-tenant", "bad-config", "bad-twice"} & set(keys)
        assert sorted(keys[head:]) == ["good-1", "good-2", "good-3"]
        assert positions(store) == list(range(1, head + 4))

    def test_duplicates_across_tickets_in_one_group(self, sqlite_store: SqliteLogStore) -> None:
        store = sqlite_store
        results = in_one_group(store, [lambda: store.append([draft("same")]) for _ in range(4)])
        appended = [r[0] for r in results if isinstance(r, list)]
        assert len(appended) == 4
        assert {a.position for a in appended} == {1}
        assert sorted(a.duplicate for a in appended) == [False, True, True, True]
        assert store.head() == 1

    def test_a_projector_refusing_one_ticket_fails_it_alone(
        self, sqlite_store: SqliteLogStore
    ) -> None:
        """A group's entries are projected together; when a projector refuses, the group is
        written again ticket by ticket, so only the refused call fails."""
        store = sqlite_store

        class Refuses:
            name = "refuses"

            def __init__(self) -> None:
                self.seen: list[int] = []

            def apply(self, conn: sqlite3.Connection, items: Sequence[Any]) -> None:
                if any(item.entry.key == "refused" for item in items):
                    raise InvalidInput("refused by a projector")
                self.seen.extend(item.stored.position for item in items)

            def reset(self, conn: sqlite3.Connection) -> None:
                pass

        refuses = Refuses()
        store.projectors.append(refuses)
        keys = ["a", "b", "refused", "c", "d"]
        results = in_one_group(store, [lambda k=k: store.append([draft(k)]) for k in keys])
        assert isinstance(results[2], InvalidInput), results
        written = [r[0] for i, r in enumerate(results) if i != 2 and isinstance(r, list)]
        assert sorted(a.position for a in written) == [1, 2, 3, 4]
        assert sorted(refuses.seen) == [1, 2, 3, 4]
        assert sorted(s.entry.key for s in everything(store)) == ["a", "b", "c", "d"]
        with store.snapshot() as conn:
            leaves = conn.execute("SELECT count(*) FROM tree_nodes WHERE level = 0").fetchone()
        assert leaves[0] == 4


class TestSqliteImmutability:
    def test_update_and_delete_on_log_are_rejected(self, sqlite_store: SqliteLogStore) -> None:
        sqlite_store.append([draft("k1", evidence=Evidence(text="STOP")), draft("k2")])
        before = everything(sqlite_store)
        conn = sqlite3.connect(sqlite_store.path)
        try:
            for sql in (
                "UPDATE log SET msisdn = '+6591234567' WHERE position = 1",
                "UPDATE log SET entry = CAST('{}' AS BLOB)",
                "DELETE FROM log WHERE position = 2",
                "DELETE FROM log",
            ):
                with pytest.raises(sqlite3.DatabaseError, match="immutable"):
                    conn.execute(sql)
            conn.rollback()
            # a position out of sequence is refused too
            row = conn.execute("SELECT * FROM log WHERE position = 2").fetchone()
            with pytest.raises(sqlite3.DatabaseError, match="dense"):
                conn.execute(
                    "INSERT INTO log VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (5, "acme", "new", "new-id", *row[4:]),
                )
            # evidence rows stay erasable (not covered by the triggers)
            conn.execute("UPDATE evidence SET salt = NULL, content = NULL WHERE position = 1")
            conn.rollback()
        finally:
            conn.close()
        assert everything(sqlite_store) == before

    def test_wal_and_full_sync(self, sqlite_store: SqliteLogStore) -> None:
        conn = connect(sqlite_store.path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        finally:
            conn.close()


class TestSqliteMigrations:
    def test_reopening_applies_nothing(self, tmp_path: Path) -> None:
        path = tmp_path / "m.db"
        SqliteLogStore(path).close()
        conn = connect(path)
        try:
            before = conn.execute("SELECT name, checksum FROM schema_migrations").fetchall()
            assert [n for n, _ in before][:2] == ["0001_log.sql", "0002_projections.sql"]
            assert migrate(conn) == []
            assert conn.execute("SELECT name, checksum FROM schema_migrations").fetchall() == before
        finally:
            conn.close()
        store = SqliteLogStore(path)
        store.append([draft("k1")])
        store.close()
        reopened = SqliteLogStore(path)
        assert positions(reopened) == [1]
        reopened.close()

    def test_a_changed_applied_migration_refuses_to_open(self, tmp_path: Path) -> None:
        path = tmp_path / "m.db"
        SqliteLogStore(path).close()
        conn = sqlite3.connect(path)
        conn.execute(
            "UPDATE schema_migrations SET checksum = 'f00d' WHERE name = '0002_projections.sql'"
        )
        conn.commit()
        conn.close()
        with pytest.raises(MigrationError, match=r"0002_projections\.sql"):
            SqliteLogStore(path)

    def test_an_unknown_applied_migration_refuses_to_open(self, tmp_path: Path) -> None:
        path = tmp_path / "m.db"
        SqliteLogStore(path).close()
        conn = sqlite3.connect(path)
        conn.execute("INSERT INTO schema_migrations VALUES ('9999_from_the_future.sql', 'ab', 'x')")
        conn.commit()
        conn.close()
        with pytest.raises(MigrationError, match=r"9999_from_the_future\.sql"):
            SqliteLogStore(path)


# -- several independent calls committed together (append_each) -------------------------------


def test_append_each_is_each_call_as_append_would_do_it(store: LogStore) -> None:
    store.append([draft("before")])
    outcomes = store.append_each(
        [
            [draft("a")],
            [draft("b1"), draft("b2")],
            [draft("before")],  # a repeat: the original, nothing written
            [retraction("r", 99)],  # fails alone
            [draft("a")],  # the same key as a call earlier in the group
            [retraction("r2", 2)],  # retracts the entry the first call appended
        ]
    )
    a, b, repeat, bad, again, retract = outcomes
    assert isinstance(a, list)
    assert [x.position for x in a] == [2]
    assert isinstance(b, list)
    assert [x.position for x in b] == [3, 4]
    assert isinstance(repeat, list)
    assert repeat[0].duplicate
    assert repeat[0].position == 1
    assert isinstance(bad, RetractionError)
    assert isinstance(again, list)
    assert again[0].duplicate
    assert again[0].position == 2
    assert isinstance(retract, list)
    assert retract[0].position == 5
    assert positions(store) == [1, 2, 3, 4, 5]
    assert [s.entry.key for s in everything(store)] == ["before", "a", "b1", "b2", "r2"]


def test_a_guard_sees_settings_written_earlier_in_the_group_and_not_rolled_back_ones(
    store: LogStore,
) -> None:
    store.append([draft("before")])
    settings = ("subaccount.configured",)

    def guarded(key: str, position: int) -> Draft:
        return msgspec.structs.replace(
            draft(key), unchanged=Unchanged(tenant="acme", types=settings, position=position)
        )

    outcomes = store.append_each(
        [
            [guarded("read-at-1", 1)],  # nothing follows position 1: written (2)
            [draft("cfg", event=configured()), retraction("bad", 99)],  # fails: rolled back
            [guarded("still-1", 1)],  # the rolled-back settings never were: written (3)
            [draft("cfg2", event=configured())],  # settings at position 4
            [guarded("stale", 3), draft("after-stale")],  # settings changed after 3: refused
            [guarded("read-at-4", 4), draft("with-it")],  # written (5, 6)
            [draft("other-tenant", tenant="globex", event=configured())],  # another tenant's
            [guarded("unaffected", 6)],  # written (8)
        ]
    )
    assert isinstance(outcomes[1], RetractionError)
    assert isinstance(outcomes[4], Stale)
    assert "position 4" in str(outcomes[4])
    written = [o for i, o in enumerate(outcomes) if i not in (1, 4)]
    assert all(isinstance(o, list) and not any(a.duplicate for a in o) for o in written)
    keys = [s.entry.key for s in everything(store)]
    assert keys == ["before", "read-at-1", "still-1", "cfg2", "read-at-4", "with-it",
                    "other-tenant", "unaffected"]  # fmt: skip


def test_append_each_of_nothing_writes_nothing(store: LogStore) -> None:
    assert store.append_each([]) == []
    assert store.head() == 0


def test_append_each_interleaves_with_concurrent_appends(store: LogStore) -> None:
    errors: list[BaseException] = []

    def appender(n: int) -> None:
        try:
            for i in range(50):
                store.append([draft(f"t{n}-{i}")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for j in range(20):
        outcomes = store.append_each([[draft(f"g{j}-{k}")] for k in range(5)])
        assert all(isinstance(o, list) and not o[0].duplicate for o in outcomes)
    for t in threads:
        t.join(60)
    assert not errors
    assert positions(store) == list(range(1, 4 * 50 + 20 * 5 + 1))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
class TestSqliteFilePermissions:
    def test_a_new_database_and_every_file_beside_it_are_owner_only(self, tmp_path: Path) -> None:
        path = tmp_path / "data" / "ledger.db"
        store = SqliteLogStore(path)
        try:
            store.append([draft("k1")])  # the -wal and -shm exist from now on
            assert store.read_from(1, 10)  # and a reader has them open
            assert mode(path.parent) == 0o700
            for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm", "ledger.db-writer-lock"):
                assert mode(path.parent / name) == 0o600, name
        finally:
            store.close()

    def test_wal_and_shm_made_later_are_owner_only_too(self, tmp_path: Path) -> None:
        path = tmp_path / "ledger.db"
        SqliteLogStore(path).close()  # the last connection removes -wal and -shm
        assert not Path(f"{path}-wal").exists()
        store = SqliteLogStore(path)
        try:
            store.append([draft("k1")])
            assert mode(Path(f"{path}-wal")) == mode(Path(f"{path}-shm")) == 0o600
        finally:
            store.close()

    def test_an_existing_directory_keeps_its_mode(self, tmp_path: Path) -> None:
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o750)
        SqliteLogStore(shared / "ledger.db").close()
        assert mode(shared) == 0o750
        assert mode(shared / "ledger.db") == 0o600


class TestSqliteAppendBuilt:
    """``append_built``: drafts made from reads inside the append's write transaction."""

    def test_build_reads_the_newest_state(self, tmp_path: Path) -> None:
        path = tmp_path / "store.db"
        mine, other = SqliteLogStore(path), SqliteLogStore(path)  # two processes, say
        try:
            other.append([draft("theirs")])

            def build(conn: sqlite3.Connection) -> list[Draft]:
                head = conn.execute("SELECT max(position) FROM log").fetchone()[0]
                return [draft(f"after-{head}")]

            (appended,) = mine.append_built(build)
            assert appended.stored.entry.key == "after-1"
            assert appended.position == 2
        finally:
            mine.close()
            other.close()

    def test_no_other_append_comes_between_the_reads_and_the_entries(self, tmp_path: Path) -> None:
        path = tmp_path / "store.db"
        mine, other = SqliteLogStore(path), SqliteLogStore(path)
        done = threading.Event()

        def theirs() -> None:
            other.append([draft("theirs")])
            done.set()

        racer = threading.Thread(target=theirs)

        def build(conn: sqlite3.Connection) -> list[Draft]:
            racer.start()
            assert not done.wait(0.5)  # the other writer waits for this append to commit
            head = conn.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()[0]
            return [draft(f"after-{head}")]

        try:
            assert len(mine.append_built(build)) == 1
            racer.join(10)
            assert done.is_set()
            assert [(s.position, s.entry.key) for s in everything(mine)] == [
                (1, "after-0"),
                (2, "theirs"),
            ]
        finally:
            mine.close()
            other.close()

    def test_a_build_that_raises_writes_nothing(self, sqlite_store: SqliteLogStore) -> None:
        def build(conn: sqlite3.Connection) -> list[Draft]:
            raise InvalidInput("refused after a look at the log")

        with pytest.raises(InvalidInput, match="refused"):
            sqlite_store.append_built(build)
        assert sqlite_store.append_built(lambda conn: []) == []
        assert sqlite_store.head() == 0
        assert sqlite_store.append([draft("k1")])[0].position == 1  # the writer is usable


def test_the_store_implements_the_port(store: LogStore) -> None:
    """The adapter satisfies the whole port (checked by mypy too: ``store`` is a ``LogStore``)."""
    methods = [name for name in dir(LogStore) if not name.startswith("_")]
    assert methods
    for name in methods:  # every method callable, every property present
        assert hasattr(store, name), name
        assert callable(getattr(store, name)) or not callable(getattr(LogStore, name)), name
