"""In-process figures: durable appends (ours and the ``eventsourcing`` library's SQLite recorder),
projection rebuild, and the raw ``sqlite3`` point-lookup baseline of the bulk decision.

Appends use the same drafts for both stores (8x8 STOP/START/HELP messages with their evidence,
from ``load.drafts``), one entry per call, on fresh databases in WAL mode with
``synchronous=FULL`` (checked on the recorder's connections, not assumed). Concurrent writers are
threads calling ``append`` (ours) or ``insert_events`` (theirs) in a loop.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from load import SUBACCOUNTS, TENANT, drafts

from ledger.store import Draft
from projections.ledger import ConsentLedger
from projections.rebuild import rebuild


def _timed_writers(items: Sequence[Any], writers: int, write: Callable[[Any], object]) -> float:
    """Seconds for ``writers`` threads to write ``items`` (split evenly), one call per item."""
    chunks = [items[i::writers] for i in range(writers)]
    errors: list[BaseException] = []

    def run(chunk: Sequence[Any]) -> None:
        try:
            for item in chunk:
                write(item)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def _rate(count: int, writers: int, elapsed: float, **settings: object) -> dict[str, object]:
    """One append run's figures, with the durability settings read back from the store."""
    return {
        "entries": count,
        "writers": writers,
        "seconds": round(elapsed, 3),
        "entries_per_s": round(count / elapsed),
        **settings,
    }


def _workload(count: int, seed: int) -> list[Draft]:
    return drafts(count, 10_000_000, seed)


def ours(count: int, writers: int, workdir: Path, seed: int = 11) -> dict[str, object]:
    """Entries/s of ``ConsentLedger.append([draft])`` with ``writers`` threads (production
    store: WAL, synchronous=FULL, group commit, every projector)."""
    items = _workload(count, seed)
    ledger = ConsentLedger(workdir / f"ours-{writers}-{uuid.uuid4().hex[:6]}.db")
    try:
        for sub in SUBACCOUNTS:
            ledger.configure_subaccount(TENANT, sub, actor="bench", default_region="SG")
        sync = ledger.store._wconn.execute("PRAGMA synchronous").fetchone()[0]
        elapsed = _timed_writers(items, writers, lambda d: ledger.append([d]))
        assert ledger.head() == count + len(SUBACCOUNTS)
    finally:
        ledger.close()
    return _rate(count, writers, elapsed, synchronous=sync)


def theirs(count: int, writers: int, workdir: Path, seed: int = 11) -> dict[str, object]:
    """Entries/s of ``eventsourcing``'s ``SQLiteApplicationRecorder.insert_events([event])`` for
    the same messages (state: the event and its evidence as JSON), WAL, synchronous=FULL."""
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    encoder = msgspec.json.Encoder()
    events = [
        StoredEvent(
            originator_id=uuid.uuid4(),
            originator_version=1,
            topic=type(d.event).__name__,
            state=encoder.encode(d),
        )
        for d in _workload(count, seed)
    ]
    store = SQLiteDatastore(str(workdir / f"theirs-{writers}-{uuid.uuid4().hex[:6]}.db"))
    make = store.pool._create_connection

    def durable() -> Any:
        conn = make()
        conn._sqlite_conn.execute("PRAGMA synchronous = FULL")
        return conn

    store.pool._create_connection = durable  # type: ignore[method-assign]
    recorder = SQLiteApplicationRecorder(store)
    recorder.create_table()
    with store.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA synchronous")
        sync = cursor.fetchone()[0]
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
    try:
        elapsed = _timed_writers(events, writers, lambda e: recorder.insert_events([e]))
        assert recorder.max_notification_id() == count
    finally:
        store.close()
    return _rate(count, writers, elapsed, synchronous=sync, journal_mode=mode)


def appends(counts: tuple[int, int], seed: int = 11) -> dict[str, dict[str, object]]:
    """Both stores, one writer (``counts[0]`` entries) and eight writers (``counts[1]``)."""
    with tempfile.TemporaryDirectory(prefix="consent-ledger-bench-", dir="/tmp") as tmp:
        work = Path(tmp)
        return {
            "ours_1": ours(counts[0], 1, work, seed),
            "theirs_1": theirs(counts[0], 1, work, seed),
            "ours_8": ours(counts[1], 8, work, seed),
            "theirs_8": theirs(counts[1], 8, work, seed),
        }


def rebuild_rate(db: Path) -> dict[str, object]:
    """Entries/s of ``consent-ledger rebuild`` (drop and replay every projection, one
    transaction, committed durably) on ``db``."""
    ledger = ConsentLedger(db)
    try:
        started = time.perf_counter()
        count = rebuild(ledger)
        elapsed = time.perf_counter() - started
    finally:
        ledger.close()
    return {"entries": count, "seconds": round(elapsed, 2), "entries_per_s": round(count / elapsed)}


RAW_LOOKUP = (
    "SELECT state FROM {table} WHERE tenant = ? AND msisdn = ? AND scope IN (?, '') "
    "ORDER BY occurred_at DESC, position DESC LIMIT 1"
)


def raw_lookups(db: Path, lists: Sequence[Sequence[str]], subaccount: str) -> dict[str, object]:
    """Numbers/s of a plain Python loop of point lookups, one query per number, on the table the
    bulk decision reads (``consent_current`` when it exists, else ``consent_facts``)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        table = "consent_current" if "consent_current" in tables else "consent_facts"
        sql = RAW_LOOKUP.format(table=table)
        for number in lists[0][:1000]:  # warm the page cache like the server's first requests
            conn.execute(sql, (TENANT, number, subaccount)).fetchone()
        done = 0
        started = time.perf_counter()
        for numbers in lists:
            for number in numbers:
                conn.execute(sql, (TENANT, number, subaccount)).fetchone()
            done += len(numbers)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return {
        "table": table,
        "numbers": done,
        "seconds": round(elapsed, 3),
        "numbers_per_s": round(done / elapsed),
        "query": sql,
    }
