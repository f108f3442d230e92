"""In-process figures: durable appends (ours and the ``eventsourcing`` library's recorder of the
same engine), projection rebuild, and the raw point-lookup baseline of the bulk decision (a
``sqlite3`` loop, or a ``psycopg`` loop on PostgreSQL).

Appends use the same drafts for both stores (8x8 STOP/START/HELP messages with their evidence,
from ``load.drafts``), one entry per call, on fresh databases: SQLite in WAL mode with
``synchronous=FULL``, PostgreSQL with ``synchronous_commit`` as the server has it (both read back
on the stores' own connections, not assumed; each PostgreSQL store in a schema of its own on the
same server). Concurrent writers are threads calling ``append`` (ours) or ``insert_events``
(theirs) in a loop; the recorder's PostgreSQL pool has a connection per writer.
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
import psycopg
from load import SUBACCOUNTS, TENANT, drafts
from psycopg.conninfo import conninfo_to_dict
from targets import Target

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


def ours(count: int, writers: int, location: str, seed: int = 11) -> dict[str, object]:
    """Entries/s of ``ConsentLedger.append([draft])`` with ``writers`` threads (production
    store: SQLite in WAL with synchronous=FULL, or PostgreSQL; group commit, every projector)
    on the new store at ``location``."""
    items = _workload(count, seed)
    ledger = ConsentLedger(location)
    try:
        for sub in SUBACCOUNTS:
            ledger.configure_subaccount(TENANT, sub, actor="bench", default_region="SG")
        wconn = ledger.store._wconn  # type: ignore[attr-defined]
        if ledger.location.engine == "sqlite":
            settings = {"synchronous": wconn.execute("PRAGMA synchronous").fetchone()[0]}
        else:
            settings = {"synchronous_commit": _show(wconn, "synchronous_commit")}
        elapsed = _timed_writers(items, writers, lambda d: ledger.append([d]))
        assert ledger.head() == count + len(SUBACCOUNTS)
    finally:
        ledger.close()
    return _rate(count, writers, elapsed, **settings)


def _show(conn: Any, setting: str) -> str:
    """A PostgreSQL session setting, read back."""
    return str(conn.execute(f"SHOW {setting}").fetchone()[0])


def _stored_events(count: int, seed: int) -> list[Any]:
    """The workload's drafts as ``eventsourcing`` stored events (state: the draft as JSON)."""
    from eventsourcing.persistence import StoredEvent

    encoder = msgspec.json.Encoder()
    return [
        StoredEvent(
            originator_id=uuid.uuid4(),
            originator_version=1,
            topic=type(d.event).__name__,
            state=encoder.encode(d),
        )
        for d in _workload(count, seed)
    ]


def theirs_postgres(
    count: int, writers: int, server: str, schema: str, seed: int = 11
) -> dict[str, object]:
    """Entries/s of ``eventsourcing``'s ``PostgresApplicationRecorder.insert_events([event])``
    for the same messages, on ``server`` in the (new, empty) ``schema``: its own pooled
    connections (one per writer), its own transaction, table lock and pipelined insert per
    call, as the library does it."""
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    events = _stored_events(count, seed)
    params = conninfo_to_dict(server)
    store = PostgresDatastore(
        dbname=str(params.get("dbname", "")),
        host=str(params.get("host", "")),
        port=str(params.get("port", 5432)),
        user=str(params.get("user", "")),
        password=str(params.get("password", "")),
        schema=schema,
        pool_size=writers,
    )
    try:
        recorder = PostgresApplicationRecorder(store)
        recorder.create_table()
        with store.get_connection() as conn:
            sync = str(conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"])
        elapsed = _timed_writers(events, writers, lambda e: recorder.insert_events([e]))
        assert recorder.max_notification_id() == count
    finally:
        store.close()
    return _rate(count, writers, elapsed, synchronous_commit=sync)


def theirs(count: int, writers: int, workdir: Path, seed: int = 11) -> dict[str, object]:
    """Entries/s of ``eventsourcing``'s ``SQLiteApplicationRecorder.insert_events([event])`` for
    the same messages (state: the event and its evidence as JSON), WAL, synchronous=FULL."""
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    events = _stored_events(count, seed)
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


def appends(
    target: Target, counts: tuple[int, int], seed: int = 11
) -> dict[str, dict[str, object]]:
    """Ours and the recorder on ``target``'s engine, one writer (``counts[0]`` entries) and
    eight writers (``counts[1]``), each on a new store."""
    with tempfile.TemporaryDirectory(prefix="consent-ledger-bench-", dir="/tmp") as tmp:
        work = Path(tmp)
        out: dict[str, dict[str, object]] = {}
        for writers, count in ((1, counts[0]), (8, counts[1])):
            out[f"ours_{writers}"] = ours(count, writers, target.scratch(f"ours{writers}", work))
            if target.schemas is None:
                out[f"theirs_{writers}"] = theirs(count, writers, work, seed)
            else:
                purpose = f"theirs{writers}"
                target.scratch(purpose, work)
                out[f"theirs_{writers}"] = theirs_postgres(
                    count, writers, target.schemas.server, target.schemas.name(purpose), seed
                )
        return {k: out[k] for k in ("ours_1", "theirs_1", "ours_8", "theirs_8")}


def rebuild_rate(db: Path | str) -> dict[str, object]:
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


def raw_lookups_postgres(
    url: str, lists: Sequence[Sequence[str]], subaccount: str
) -> dict[str, object]:
    """Numbers/s of a plain Python ``psycopg`` loop of point lookups on ``consent_current``,
    one prepared query (one round trip) per number, on one connection."""
    sql = RAW_LOOKUP.format(table="consent_current").replace("?", "%s")
    with psycopg.connect(url, autocommit=True) as conn:
        for number in lists[0][:1000]:  # warm the cache like the server's first requests
            conn.execute(sql, (TENANT, number, subaccount), prepare=True).fetchone()
        done = 0
        started = time.perf_counter()
        for numbers in lists:
            for number in numbers:
                conn.execute(sql, (TENANT, number, subaccount), prepare=True).fetchone()
            done += len(numbers)
        elapsed = time.perf_counter() - started
    return {
        "table": "consent_current",
        "numbers": done,
        "seconds": round(elapsed, 3),
        "numbers_per_s": round(done / elapsed),
        "query": sql,
    }


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
