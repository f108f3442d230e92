"""The PostgreSQL adapter of the log store: many nodes, one durable, ordered, verifiable log.

Guarantees beyond the port (``ledger.store``):
- **Dense positions in commit order across nodes.** A write transaction first takes the log's
  transaction-level advisory lock, then reads the head, assigns the next positions and writes
  the entries, their evidence, tree nodes and projections; the lock is released only after the
  commit is durable and visible, so the next writer (of any node) sees it, and a reader never
  sees a position missing below one it has seen. No sequence supplies positions (a rolled-back
  insert would leave a gap); the database itself refuses a position that is not the next one.
- **One clock.** Every "now" (``recorded_at``, receive times, a decision's default time) is the
  database's ``clock_timestamp()`` — read under the log lock for ``recorded_at``, so it never
  decreases with position — unless a clock is injected (tests). No node's own clock is used.
- **No node holds the log forever.** A writer waits at most ``lock_timeout`` for the lock
  (then ``StoreUnavailable``: the API answers 503 and 8x8 retries; appends are idempotent by
  key), and the server ends the session of a node stopped mid-transaction
  (``ledger.postgres.connection``). That time-out only ends a session waiting *between*
  statements, so a write transaction sends whole statements only: no pipeline
  (``executemany``) and no ``COPY``, inside which a frozen node's session stays "active" and
  keeps the lock until the node's process dies.
- Concurrent appends of one process are group-committed (``ledger.group_commit``): the group is
  taken after the lock is acquired, one transaction and one durable commit for all of it.
- Reads run on a bounded pool; a ``snapshot`` is one ``REPEATABLE READ`` read-only transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import datetime

import psycopg
from psycopg.pq import TransactionStatus

from ledger.drafting import next_entry
from ledger.errors import LedgerError, NotFound, Stale, StoreUnavailable
from ledger.events import EntryRetracted
from ledger.group_commit import NOTHING_WRITTEN, GroupCommit, WriteCursor
from ledger.location import mask_url
from ledger.postgres import records, tree
from ledger.postgres.connection import (
    DEFAULT_POOL_SIZE,
    Connection,
    connect,
    is_unavailable,
    lock_key,
    pool,
    unavailable_on_driver_error,
)
from ledger.postgres.lease import SessionLease
from ledger.postgres.migrate import migrate
from ledger.postgres.records import PgKeys
from ledger.postgres.sessions import PgSessions
from ledger.retraction import check_retraction
from ledger.store import (
    Appended,
    Committed,
    Draft,
    LogStore,
    Projector,
    QuarantineRecord,
    StoredEntry,
    Unchanged,
)
from ledger.timefmt import format_time

RARE_TYPES = (
    "type NOT IN ('consent.revoked', 'consent.granted', 'help.requested', 'review.flagged')"
)
"""The condition of the partial index ``log_by_rare_type``: a query searching the log by a rare
entry type includes it verbatim so the planner uses that index."""
TARGET_POSITION = "(convert_from(entry, 'UTF8')::jsonb #>> '{event,position}')::bigint"
"""The position a retraction or review resolution targets, read from the stored entry."""

Build = Callable[[Connection], Sequence[Draft]]
"""Makes the drafts of an append from what it reads inside the append's write transaction."""


class PgLogStore:
    """The log store on one PostgreSQL database (schema): safe to share between threads, and
    between processes and nodes through the database."""

    def __init__(
        self,
        url: str,
        projectors: Sequence[Projector[Connection]] = (),
        clock: Callable[[], datetime] | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        self.url = url
        self._injected_clock = clock
        self._pool = pool(url, pool_size)
        try:
            self._wconn = connect(url)
            migrate(self._wconn)
            with unavailable_on_driver_error("cannot read the lock keys"):
                self.log_key = lock_key(self._wconn, "log")
                self._keys_key = lock_key(self._wconn, "keys")
        except BaseException:
            self._pool.close()
            raise
        self._writer = _Writer(self, list(projectors))
        self.group_commit = GroupCommit(self._writer)
        """Schedules the appends of this process into groups (``ledger.group_commit``)."""
        self._write_lock = self.group_commit.write_lock
        self._leases: dict[str, SessionLease] = {}
        self._leases_lock = threading.Lock()
        self._clock_conn: Connection | None = None
        self._clock_lock = threading.Lock()

    @property
    def projectors(self) -> list[Projector[Connection]]:
        """The projectors every append applies, in its transaction (a list one may extend)."""
        return self._writer.projectors

    @property
    def location(self) -> str:
        """The database URL with its password masked."""
        return mask_url(self.url)

    # -- clock -----------------------------------------------------------------------------
    @property
    def injected_clock(self) -> Callable[[], datetime] | None:
        """The clock injected in place of the database's (tests), if any."""
        return self._injected_clock

    @property
    def clock(self) -> Callable[[], datetime]:
        """The database's clock (or the injected one): see the module."""
        return self._injected_clock or self._database_now

    def _database_now(self) -> datetime:
        """Read on a connection of its own, never a pooled one: a caller holding pooled
        connections (a snapshot) that asks for the time must not wait for another."""
        with self._clock_lock, unavailable_on_driver_error("cannot read the clock"):
            conn = self._clock_conn
            if conn is None or conn.closed or conn.broken:
                conn = self._clock_conn = connect(self.url)
            return database_now(conn)

    # -- reads -----------------------------------------------------------------------------
    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A pooled autocommit connection for the block (each statement its own snapshot)."""
        unavailable = unavailable_on_driver_error("the ledger cannot be read now")
        with unavailable, self._pool.connection() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only ``REPEATABLE READ`` transaction: every query inside sees one state."""
        with self.reader() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                yield conn
            finally:
                if conn.info.transaction_status != TransactionStatus.UNKNOWN:
                    conn.execute("ROLLBACK")

    def head(self) -> int:
        """The newest committed position (0 when empty)."""
        with self.reader() as conn:
            return head_of(conn)

    def read_from(self, position: int, limit: int) -> list[StoredEntry]:
        """Up to ``limit`` entries from ``position`` on, in order."""
        with self.reader() as conn:
            rows = conn.execute(
                "SELECT position, entry, leaf_hash FROM log WHERE position >= %s "
                "ORDER BY position LIMIT %s",
                (position, limit),
            ).fetchall()
        return stored(rows)

    def read_number(self, tenant: str, msisdn: str) -> list[StoredEntry]:
        """Every entry of ``tenant`` about ``msisdn``, in order."""
        with self.reader() as conn:
            rows = conn.execute(
                "SELECT position, entry, leaf_hash FROM log WHERE tenant = %s AND msisdn = %s "
                "ORDER BY position",
                (tenant, msisdn),
            ).fetchall()
        return stored(rows)

    def read_positions(self, positions: Sequence[int]) -> list[StoredEntry]:
        """The entries at ``positions`` that exist, in position order."""
        with self.reader() as conn:
            rows = conn.execute(
                "SELECT position, entry, leaf_hash FROM log WHERE position = ANY(%s) "
                "ORDER BY position",
                (list(positions),),
            ).fetchall()
        return stored(rows)

    def evidence(self, positions: Sequence[int]) -> dict[int, tuple[bytes | None, bytes | None]]:
        """(salt, content) per position that has evidence; both ``None`` once erased."""
        with self.reader() as conn:
            return evidence_of(conn, positions)

    def erase_evidence(self, position: int, reason: str) -> None:
        """Erase one entry's evidence (salt and content); the entry and every hash stay valid."""
        with self.reader() as conn:
            cur = conn.execute(
                "UPDATE evidence SET salt = NULL, content = NULL, erased_at = %s, "
                "erase_reason = %s WHERE position = %s AND erased_at IS NULL",
                (format_time(self.clock()), reason, position),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no unerased evidence at position {position}")

    def erase(
        self,
        positions: Sequence[int],
        reason: str,
        tombstone: Draft | None = None,
        quarantined: Sequence[int] = (),
    ) -> Appended | None:
        """See the port: one append transaction under the log lock (``append_built``): the
        evidence and the quarantined bodies erased by one statement each, the tombstone
        appended after them. PostgreSQL keeps the old row versions until ``scrub``."""

        def build(conn: Connection) -> list[Draft]:
            at = self._writer.now()
            conn.execute(
                "UPDATE evidence SET salt = NULL, content = NULL, erased_at = %s, "
                "erase_reason = %s WHERE erased_at IS NULL AND position = ANY(%s::bigint[])",
                (at, reason, list(positions)),
            )
            records.erase_quarantined(conn, quarantined, f"body erased on {at[:10]}: {reason}")
            return [tombstone] if tombstone is not None else []

        appended = self.append_built(build)
        return appended[0] if appended else None

    def scrub(self) -> None:
        """See the port: ``VACUUM (FULL)`` of ``evidence`` and ``quarantine`` (and their TOAST
        tables), on a connection of its own. A plain ``VACUUM`` frees the space of the old row
        versions but leaves their bytes in it; a full one writes each table anew, and the
        server empties and removes the old files. A plain ``VACUUM`` runs first: the old
        versions it cannot remove (its count of dead rows left; nothing but an erasure updates
        these tables) are ones a transaction older than the erasure may still read, which a
        rewrite would keep too — then ``StoreUnavailable`` and nothing more is done. The
        rewrite waits at most ``lock_timeout`` for the tables (else ``StoreUnavailable``), then
        holds them exclusively while it runs (appends wait: docs/adopting.md §3). Only the
        tables' owner may rewrite them: ``StoreUnavailable`` for another role."""
        conn = connect(self.url)
        try:
            with unavailable_on_driver_error("cannot scrub now"):
                row = conn.execute(_OWNER).fetchone()
                if row is None or not row[0]:
                    raise StoreUnavailable(
                        "only the owner of the evidence and quarantine tables may rewrite them: "
                        "scrub as the owner role"
                    )
                conn.execute("VACUUM evidence, quarantine")
                row = conn.execute(_DEAD).fetchone()
                if row is not None and row[0]:
                    raise StoreUnavailable(
                        f"a transaction older than the erasure may still read {row[0]} erased "
                        "row version(s): the scrub did not complete; retry"
                    )
                before = conn.execute(_FILES).fetchone()
                conn.execute("VACUUM (FULL) evidence, quarantine")
                after = conn.execute(_FILES).fetchone()
        finally:
            conn.close()
        if before == after:
            raise StoreUnavailable("the evidence tables were not rewritten; scrub again")

    def keys(self) -> PgKeys:
        """The API keys (each call reads the newest committed state)."""
        return PgKeys(self.reader)

    @contextmanager
    def keys_for_update(self) -> Iterator[PgKeys]:
        """The API keys in one transaction, serialised with every other such block (of any
        node): what is read and written in the block commits together, or not at all."""
        with self.reader() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._keys_key,))
            yield PgKeys(lambda: nullcontext(conn))

    def sessions(self) -> PgSessions:
        """The console's sessions (each call reads the newest committed state)."""
        return PgSessions(self.reader)

    def quarantined(self, tenant: str, *, after_id: int, limit: int) -> list[QuarantineRecord]:
        """Up to ``limit`` of ``tenant``'s quarantined bodies with id > ``after_id``."""
        with self.reader() as conn:
            return records.quarantined(conn, tenant, after_id, limit)

    def quarantine(self, record: QuarantineRecord) -> int:
        """Keep a webhook body in the quarantine, durably once this returns; its id."""
        with self.reader() as conn:
            return records.add_quarantined(conn, record)

    # -- appends ---------------------------------------------------------------------------
    def append(self, drafts: Sequence[Draft]) -> list[Appended]:
        """Append ``drafts`` atomically and durably (group-committed with concurrent callers)."""
        return self.group_commit.append(drafts)

    def append_each(self, calls: Sequence[Sequence[Draft]]) -> list[list[Appended] | Exception]:
        """Append each of ``calls`` as a concurrent ``append`` would, in one transaction."""
        return self.group_commit.append_each(calls)

    def append_built(self, build: Build) -> list[Appended]:
        """Append the drafts ``build`` returns, calling it on the writer connection inside the
        append's transaction, under the log lock: no other append of any node comes between
        its reads and its entries (``UnitOfWork.decide_and_append``)."""
        return self.group_commit.append_built(lambda: build(self._writer.conn))

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A write transaction holding the log lock (maintenance: rebuild's catch-up)."""
        writer = self._writer
        with self._write_lock:
            writer.begin()
            try:
                yield writer.conn
                writer.commit()
            except BaseException:
                writer.abandon()
                raise

    def probe_write(self, timeout: float = 1.0) -> None:
        """Raise ``StoreUnavailable`` unless the log lock could be taken within ``timeout``
        seconds; nothing is written."""
        if not self._write_lock.acquire(timeout=timeout):
            raise StoreUnavailable("the writer stayed busy")
        try:
            conn = self._writer.connection()
            with unavailable_on_driver_error("cannot start a write"), conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = {int(timeout * 1000)}")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.log_key,))
        finally:
            self._write_lock.release()

    def lease(self, job: str) -> SessionLease:
        """This process's lease of ``job`` (``ledger.runner``): a session advisory lock on a
        connection of its own, freed by the server when this process dies."""
        with self._leases_lock:
            if job not in self._leases:
                self._leases[job] = SessionLease(self.url, job)
            return self._leases[job]

    def close(self) -> None:
        """Close every connection and give up any lease."""
        for lease in self._leases.values():
            lease.release()
        with suppress(psycopg.Error):
            self._writer.conn.close()
        with self._clock_lock, suppress(psycopg.Error):
            if self._clock_conn is not None:
                self._clock_conn.close()
        self._pool.close()


class _Writer:
    """The store's side of group commit (``ledger.group_commit.GroupWriter``) on the writer
    connection: the log lock, the transaction and savepoints, and the SQL of an append."""

    def __init__(self, store: PgLogStore, projectors: list[Projector[Connection]]) -> None:
        self.store = store
        self.conn = store._wconn
        self.projectors = projectors
        self._reads = _RetractionReads(self)
        self._opened: tuple[int, str, datetime] | None = None
        """What ``begin`` read under the log lock: the head, its recorded time, the clock."""
        self._newest: dict[tuple[str, tuple[str, ...]], int] = {}
        """Per transaction: the newest position of an entry of (tenant, types), for guards."""

    def connection(self) -> Connection:
        """The writer connection, opened again if the last one was lost."""
        if self.conn.closed or self.conn.broken:
            self.conn = connect(self.store.url)
        return self.conn

    def exclusive(self) -> AbstractContextManager[None]:
        return nullcontext()  # the log lock is taken in ``begin``, inside the transaction

    def begin(self) -> None:
        """Begin, take the log lock, then read the head and the database's clock: one round
        trip, so a group pays one wait for all of it. One simple-protocol message of three
        whole statements (never a pipeline: see the module), the lock key a number of ours."""
        self._opened = None
        self._newest.clear()
        try:
            conn = self.connection()
            opened = conn.execute(
                f"BEGIN; SELECT pg_advisory_xact_lock({int(self.store.log_key)}); {_OPENED}"
            )
            opened.nextset()  # past BEGIN's and the lock's results to the head's
            opened.nextset()
            row = opened.fetchone()
            assert row is not None
            self._opened = (int(row[0] or 0), str(row[1] or ""), row[2])
        except psycopg.Error as exc:
            self.abandon()
            raise StoreUnavailable(f"cannot start a write: {exc}") from exc

    def cursor(self) -> WriteCursor:
        """The head (and its recorded time) read by ``begin`` under the log lock."""
        if self._opened is None:  # pragma: no cover - begin always reads it
            raise StoreUnavailable("the write transaction was not begun")
        return WriteCursor(self._opened[0], self._opened[1])

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def abandon(self) -> None:
        """Roll back, unless the transaction (or the connection) is already gone."""
        self._newest.clear()
        if self.in_transaction():
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")

    def in_transaction(self) -> bool:
        status = self.conn.info.transaction_status
        return status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)

    def savepoint(self) -> None:
        self.conn.execute("SAVEPOINT ticket")

    def release(self) -> None:
        self.conn.execute("RELEASE SAVEPOINT ticket")

    def rollback_to(self) -> None:
        self._newest.clear()  # it may name entries rolled back here
        self.conn.execute("ROLLBACK TO SAVEPOINT ticket")
        self.conn.execute("RELEASE SAVEPOINT ticket")

    @staticmethod
    def failure(exc: Exception) -> Exception:
        if isinstance(exc, LedgerError):
            return exc
        if is_unavailable(exc):
            return StoreUnavailable(f"{NOTHING_WRITTEN}: {exc}")
        return exc

    @staticmethod
    def lost(exc: Exception) -> Exception:
        if isinstance(exc, psycopg.Error):
            return StoreUnavailable(f"{NOTHING_WRITTEN}: {exc}")
        return exc

    def now(self) -> str:
        """The recorded time of a group: the injected clock, else the database's (read under
        the log lock, inside the group's transaction)."""
        injected = self.store._injected_clock
        if injected:
            return format_time(injected())
        opened = self._opened[2] if self._opened is not None else database_now(self.conn)
        return format_time(opened)

    def write(self, drafts: Sequence[Draft], cursor: WriteCursor, project: bool) -> list[Appended]:
        start = len(cursor.items)
        if len(drafts) > 1 and not any(isinstance(d.event, EntryRetracted) for d in drafts):
            results = self._write_batch(drafts, cursor)
        else:
            results = [self._write_one(draft, cursor) for draft in drafts]
        fresh = cursor.items[start:]
        if fresh and project:
            self.project(fresh)
        return results

    def _write_one(self, draft: Draft, cursor: WriteCursor) -> Appended:
        """Write one draft: one statement for the entry and its evidence (the key's
        uniqueness decides whether it is new)."""
        conn = self.conn
        if draft.unchanged is not None:
            self._check_unchanged(draft.unchanged)
        retracts = draft.event.position if isinstance(draft.event, EntryRetracted) else None
        item = None
        if retracts is None or not _taken(conn, draft):
            if retracts is not None:
                check_retraction(self._reads, draft.tenant, retracts)
            item = self._insert(draft, cursor)  # None: the key is taken
        if item is None:
            return Appended(_original(conn, draft), duplicate=True)
        self._wrote(item, cursor)
        return Appended(item.stored, duplicate=False)

    def _write_batch(self, drafts: Sequence[Draft], cursor: WriteCursor) -> list[Appended]:
        """Write several drafts (none a retraction, which reads the log) in three statements
        whatever their number: the keys already in the log read at once (the log lock keeps
        every other writer out until the commit), then every new entry, then every evidence
        row, each set as arrays in one statement. A key repeated within the drafts is a
        duplicate of its first draft, as it is when the drafts are written one by one."""
        known = _existing(self.conn, drafts)
        results: list[Appended] = []
        logged: list[tuple[object, ...]] = []
        evidence: list[tuple[int, bytes, bytes]] = []
        for draft in drafts:
            if draft.unchanged is not None:
                self._check_unchanged(draft.unchanged)
            original = known.get((draft.tenant, draft.key))
            if original is not None:
                results.append(Appended(original, duplicate=True))
                continue
            item, salt, content = self._entry(draft, cursor)
            known[(draft.tenant, draft.key)] = item.stored
            logged.append(_log_row(item))
            if salt is not None and content is not None:
                evidence.append((item.stored.position, salt, content))
            self._wrote(item, cursor)
            results.append(Appended(item.stored, duplicate=False))
        if logged:
            self.conn.execute(_INSERT_LOGGED, [list(c) for c in zip(*logged, strict=True)])
        if evidence:
            self.conn.execute(_INSERT_EVIDENCE, [list(c) for c in zip(*evidence, strict=True)])
        return results

    def _check_unchanged(self, guard: Unchanged) -> None:
        """Raise ``Stale`` when an entry of ``guard.types`` of its tenant follows its position.
        The newest such position is read once per transaction (the log lock keeps every other
        writer out) and kept up to date with the transaction's own entries (``_wrote``)."""
        memo = (guard.tenant, guard.types)
        newest = self._newest.get(memo)
        if newest is None:
            row = self.conn.execute(
                f"SELECT coalesce(max(position), 0) FROM log WHERE type = ANY(%s) "  # noqa: S608
                f"AND {RARE_TYPES} AND tenant = %s",
                (list(guard.types), guard.tenant),
            ).fetchone()
            assert row is not None
            newest = self._newest[memo] = int(row[0])
        if newest > guard.position:
            _check_unchanged(self.conn, guard)  # names the first such position once written
            raise Stale(f"the settings read changed at position {newest}; read again and retry")

    def _wrote(self, item: Committed, cursor: WriteCursor) -> None:
        """Account for a new entry of this transaction: the cursor and the guard memo."""
        cursor.items.append(item)
        entry = item.entry
        for tenant, types in self._newest:
            if tenant == entry.tenant and entry.type in types:
                self._newest[(tenant, types)] = entry.position

    def project(self, items: list[Committed]) -> None:
        """Hash ``items`` into the tree and apply them to every projection."""
        tree.add_leaves(self.conn, [item.stored for item in items])
        for projector in self.projectors:
            projector.apply(self.conn, items)

    def _entry(
        self, draft: Draft, cursor: WriteCursor
    ) -> tuple[Committed, bytes | None, bytes | None]:
        """``draft`` as the next entry (``ledger.drafting``; the cursor advanced past it), with
        its evidence's salt and content; nothing is written."""
        made = next_entry(draft, cursor, self.now)
        return made.committed, made.salt, made.content

    def _insert(self, draft: Draft, cursor: WriteCursor) -> Committed | None:
        """Insert ``draft`` as the next entry, with its evidence, in one statement; ``None``
        (nothing written, the cursor as it was) when its (tenant, key) is already in the
        log."""
        mark = cursor.head, cursor.last_recorded
        item, salt, content = self._entry(draft, cursor)
        if salt is None:
            inserted = self.conn.execute(_INSERT_NEW, _log_row(item)).rowcount
        else:
            row = (*_log_row(item), salt, content)
            inserted = self.conn.execute(_INSERT_NEW_WITH_EVIDENCE, row).rowcount
        if not inserted:
            cursor.head, cursor.last_recorded = mark
            return None
        return item


_INSERT_LOGGED = (
    "INSERT INTO log (position, tenant, key, event_id, type, subaccount, msisdn, occurred_at, "
    "recorded_at, entry, leaf_hash) SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[], "
    "%s::bytea[])"
)
"""Many ``log`` rows (columns in ``_log_row`` order, one array each) in one statement, in
position order (the dense-position trigger sees each row after the one before)."""
_INSERT_EVIDENCE = (
    "INSERT INTO evidence (position, salt, content) "
    "SELECT * FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[])"
)
_INSERT_NEW = (
    "INSERT INTO log (position, tenant, key, event_id, type, subaccount, msisdn, occurred_at, "
    "recorded_at, entry, leaf_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (tenant, key) DO NOTHING"
)
_INSERT_NEW_WITH_EVIDENCE = (
    "WITH logged AS (" + _INSERT_NEW + " RETURNING position) "  # noqa: S608
    "INSERT INTO evidence (position, salt, content) SELECT position, %s, %s FROM logged"
)
"""A new entry and its evidence in one statement: the evidence row is inserted only when the
entry was (its row count says whether the key was new)."""


def _log_row(item: Committed) -> tuple[object, ...]:
    """The ``log`` row of ``item``, in ``_INSERT_NEW``'s column order."""
    entry, stored = item.entry, item.stored
    return (
        stored.position,
        entry.tenant,
        entry.key,
        entry.event_id,
        entry.type,
        entry.subaccount,
        entry.msisdn,
        entry.occurred_at,
        entry.recorded_at,
        stored.data,
        stored.leaf_hash,
    )


def _existing(conn: Connection, drafts: Sequence[Draft]) -> dict[tuple[str, str], StoredEntry]:
    """The entries already in the log under the (tenant, key) of any of ``drafts``."""
    rows = conn.execute(
        "SELECT l.tenant, l.key, l.position, l.entry, l.leaf_hash FROM log AS l "
        "JOIN unnest(%s::text[], %s::text[]) AS k (tenant, key) "
        "ON l.tenant = k.tenant AND l.key = k.key",
        ([d.tenant for d in drafts], [d.key for d in drafts]),
    ).fetchall()
    return {(str(t), str(k)): stored([(p, d, h)])[0] for t, k, p, d, h in rows}


class _RetractionReads:
    """The reads of ``ledger.retraction.check_retraction`` on the writer connection."""

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer

    def type_at(self, tenant: str, position: int) -> str | None:
        row = self.writer.conn.execute(
            "SELECT type FROM log WHERE position = %s AND tenant = %s", (position, tenant)
        ).fetchone()
        return None if row is None else str(row[0])

    def retraction_of(self, tenant: str, position: int) -> int | None:
        row = self.writer.conn.execute(
            f"SELECT position FROM log WHERE type = 'entry.retracted' AND {RARE_TYPES} "  # noqa: S608
            f"AND tenant = %s AND {TARGET_POSITION} = %s",
            (tenant, position),
        ).fetchone()
        return None if row is None else int(row[0])


_OPENED = (
    "SELECT head.position, head.recorded_at, clock_timestamp() FROM (SELECT 1) AS one "
    "LEFT JOIN LATERAL (SELECT position, recorded_at FROM log ORDER BY position DESC LIMIT 1) "
    "AS head ON true"
)
"""The head, its recorded time and the database's clock, read once the log lock is held."""
_SCRUBBED = "('evidence'::regclass, 'quarantine'::regclass)"
_OWNER = (
    "SELECT bool_and(pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE')) "  # noqa: S608
    "FROM pg_class c, pg_database d WHERE d.datname = current_database() "
    f"AND c.oid IN {_SCRUBBED}"
)
"""Whether this role may vacuum the scrubbed tables (their owner's or the database owner's
privileges; a superuser has every role's)."""
_DEAD = (
    "SELECT coalesce(sum(pg_stat_get_dead_tuples(c.oid)), 0) FROM pg_class c "  # noqa: S608
    f"WHERE c.oid IN {_SCRUBBED} OR c.oid IN (SELECT reltoastrelid FROM pg_class "
    f"WHERE oid IN {_SCRUBBED})"
)
"""The dead row versions the last ``VACUUM`` of the scrubbed tables (and their TOAST tables)
could not remove."""
_FILES = "SELECT pg_relation_filenode('evidence'), pg_relation_filenode('quarantine')"


def _taken(conn: Connection, draft: Draft) -> bool:
    """Whether the log already holds an entry with ``draft``'s (tenant, key)."""
    row = conn.execute(
        "SELECT 1 FROM log WHERE tenant = %s AND key = %s", (draft.tenant, draft.key)
    ).fetchone()
    return row is not None


def _original(conn: Connection, draft: Draft) -> StoredEntry:
    """The entry already in the log with ``draft``'s (tenant, key)."""
    row = conn.execute(
        "SELECT position, entry, leaf_hash FROM log WHERE tenant = %s AND key = %s",
        (draft.tenant, draft.key),
    ).fetchone()
    assert row is not None
    return StoredEntry(int(row[0]), bytes(row[1]), bytes(row[2]))


def _check_unchanged(conn: Connection, guard: Unchanged) -> None:
    """Raise ``Stale`` when an entry of ``guard.types`` of its tenant follows its position."""
    found = conn.execute(
        f"SELECT position FROM log WHERE type = ANY(%s) AND {RARE_TYPES} "  # noqa: S608
        "AND position > %s AND tenant = %s LIMIT 1",
        (list(guard.types), guard.position, guard.tenant),
    ).fetchone()
    if found is not None:
        raise Stale(f"the settings read changed at position {found[0]}; read again and retry")


def database_now(conn: Connection) -> datetime:
    """The database server's current time (``clock_timestamp()``, not the transaction's)."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    moment: datetime = row[0]
    return moment


def head_of(conn: Connection) -> int:
    """The newest log position ``conn`` sees (0 for an empty log): the one head query."""
    row = conn.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()
    assert row is not None
    return int(row[0])


def evidence_of(
    conn: Connection, positions: Sequence[int]
) -> dict[int, tuple[bytes | None, bytes | None]]:
    """(salt, content) per position of ``positions`` with an evidence row."""
    if not positions:
        return {}
    rows = conn.execute(
        "SELECT position, salt, content FROM evidence WHERE position = ANY(%s)",
        (list(positions),),
    ).fetchall()
    return {int(p): (_bytes(s), _bytes(c)) for p, s, c in rows}


def stored(rows: Sequence[tuple[object, ...]]) -> list[StoredEntry]:
    """``StoredEntry`` values from (position, entry, leaf_hash) rows."""
    return [StoredEntry(int(p), bytes(d), bytes(h)) for p, d, h in rows]  # type: ignore[call-overload]


def _bytes(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]


def as_port(store: PgLogStore) -> LogStore:
    """``store`` as the log-store port (mypy checks here that the adapter implements it all)."""
    return store
