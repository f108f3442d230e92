"""The embedded SQLite adapter of the log store (the default store).

Guarantees beyond the port (``ledger.store``): WAL with ``synchronous=FULL`` (an acknowledged
append survives a crash or power loss); one writer at a time across processes (``BEGIN
IMMEDIATE``); concurrent ``append`` calls in one process are group-committed
(``ledger.group_commit``) — one transaction and one fsync for everything waiting — while each
call still succeeds or fails alone (should any call fail, the group is rolled back and written
again, a savepoint per call); projectors run inside
the same transaction as the entries they apply, so a projection is never ahead of or behind the
log it has recorded as applied.

Speed, without weakening any of that: the entries of one group share one recorded time (read
once, inside the write lock) and are written, hashed into the tree and applied to the projections
together (savepoints only when a group is written again, as above); a group's leader waits a
moment for the callers of recent groups to rejoin; a taken idempotency key is found by the insert
itself; writers in other processes queue on a lock file beside the database
(``<db>-writer-lock``, ``flock``) and are woken the moment it is free, instead of polling SQLite's
lock with ever longer sleeps.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

from ledger.drafting import next_entry
from ledger.errors import LedgerError, NotFound, Stale, StoreUnavailable
from ledger.events import EntryRetracted
from ledger.files import PRIVATE_FILE_MODE
from ledger.group_commit import NOTHING_WRITTEN, GroupCommit, WriteCursor
from ledger.retraction import check_retraction
from ledger.sqlite import quarantine, tree
from ledger.sqlite.connection import BUSY_TIMEOUT_MS, connect, unavailable_on_driver_error
from ledger.sqlite.keys import SqliteKeys
from ledger.sqlite.lease import FileLease
from ledger.sqlite.migrate import migrate
from ledger.sqlite.quarantine import listed as quarantine_rows
from ledger.sqlite.sessions import SqliteSessions
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
from ledger.timefmt import format_time, utc_now

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy timeout alone serialises
    fcntl = None  # type: ignore[assignment]

RARE_TYPES = (
    "type NOT IN ('consent.revoked', 'consent.granted', 'help.requested', 'review.flagged')"
)
"""The condition of the partial index ``log_by_rare_type`` (migration 0006): a query that
searches the log by a rare entry type must include it verbatim, or SQLite scans the log."""


Build = Callable[[sqlite3.Connection], Sequence[Draft]]
"""Makes the drafts of an append from what it reads inside the append's write transaction."""


class SqliteLogStore:
    """The log store on one SQLite file; safe to share between threads and processes."""

    def __init__(
        self,
        path: str | Path,
        projectors: Sequence[Projector[sqlite3.Connection]] = (),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._local = threading.local()
        self._leases: dict[str, FileLease] = {}
        self._leases_lock = threading.Lock()
        self._wconn = connect(self.path)
        self._writer = _Writer(self._wconn, self.path, list(projectors), clock)
        self.group_commit = GroupCommit(self._writer)
        """Schedules the appends of this process into groups (``ledger.group_commit``)."""
        self._write_lock = self.group_commit.write_lock
        try:
            migrate(self._wconn)
            self._catch_up_tree()
        except BaseException:
            self.close()
            raise

    @property
    def projectors(self) -> list[Projector[sqlite3.Connection]]:
        """The projectors every append applies, in its transaction (a list one may extend)."""
        return self._writer.projectors

    def _catch_up_tree(self) -> None:
        """Hash into the tree any entries appended before the tree existed (one-off upgrade)."""
        with self.write_transaction() as conn:
            size = tree.tree_size(conn)
            while True:
                rows = conn.execute(
                    "SELECT position, entry, leaf_hash FROM log WHERE position > ? "
                    "ORDER BY position LIMIT 10000",
                    (size,),
                ).fetchall()
                if not rows:
                    return
                tree.add_leaves(conn, [StoredEntry(p, d, h) for p, d, h in rows])
                size = rows[-1][0]

    # -- reads -----------------------------------------------------------------------------
    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
        return conn

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one consistent state of the database."""
        conn = self.reader()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @property
    def clock(self) -> Callable[[], datetime]:
        """The one clock every "now" of the ledger comes from (``recorded_at``, receive times,
        a decision's default ``at``): injectable, owned by the store."""
        return self._clock

    def head(self) -> int:
        """The newest committed position (0 when empty); ``StoreUnavailable`` when the database
        cannot be read."""
        with unavailable_on_driver_error("cannot read the log"):
            return head_of(self.reader())

    def read_from(self, position: int, limit: int) -> list[StoredEntry]:
        """Up to ``limit`` entries from ``position`` on, in order."""
        rows = self.reader().execute(
            "SELECT position, entry, leaf_hash FROM log WHERE position >= ? "
            "ORDER BY position LIMIT ?",
            (position, limit),
        )
        return [StoredEntry(p, d, h) for p, d, h in rows]

    def read_number(self, tenant: str, msisdn: str) -> list[StoredEntry]:
        """Every entry of ``tenant`` about ``msisdn``, in order."""
        rows = self.reader().execute(
            "SELECT position, entry, leaf_hash FROM log WHERE tenant = ? AND msisdn = ? "
            "ORDER BY position",
            (tenant, msisdn),
        )
        return [StoredEntry(p, d, h) for p, d, h in rows]

    def read_positions(self, positions: Sequence[int]) -> list[StoredEntry]:
        """The entries at ``positions`` that exist, in position order."""
        rows = self.reader().execute(
            "SELECT position, entry, leaf_hash FROM log WHERE position IN "
            "(SELECT value FROM json_each(?)) ORDER BY position",
            (str(list(positions)),),
        )
        return [StoredEntry(p, d, h) for p, d, h in rows]

    def evidence(self, positions: Sequence[int]) -> dict[int, tuple[bytes | None, bytes | None]]:
        """(salt, content) per position that has evidence; both ``None`` once erased."""
        rows = self.reader().execute(
            "SELECT position, salt, content FROM evidence WHERE position IN "
            "(SELECT value FROM json_each(?))",
            (str(list(positions)),),
        )
        return {p: (s, c) for p, s, c in rows}

    def erase_evidence(self, position: int, reason: str) -> None:
        """Erase one entry's evidence (salt and content); the entry and every hash stay valid."""
        with self._write_lock, unavailable_on_driver_error(NOTHING_WRITTEN):
            cur = self._wconn.execute(
                "UPDATE evidence SET salt = NULL, content = NULL, erased_at = ?, "
                "erase_reason = ? WHERE position = ? AND erased_at IS NULL",
                (format_time(self._clock()), reason, position),
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
        """See the port: with ``secure_delete`` on for the transaction, so SQLite overwrites
        the freed content (in the page and in freed overflow pages) with zeros."""
        at = format_time(self._clock())

        def build(conn: sqlite3.Connection) -> list[Draft]:
            conn.execute("PRAGMA secure_delete = ON")
            for chunk in _chunks(positions, 500):
                conn.execute(
                    "UPDATE evidence SET salt = NULL, content = NULL, erased_at = ?, "
                    "erase_reason = ? WHERE erased_at IS NULL AND position IN "
                    "(SELECT value FROM json_each(?))",
                    (at, reason, str(list(chunk))),
                )
            quarantine.erase(conn, quarantined, f"body erased on {at[:10]}: {reason}")
            return [tombstone] if tombstone is not None else []

        try:
            appended = self.append_built(build)
        finally:
            with suppress(sqlite3.Error):
                self._wconn.execute("PRAGMA secure_delete = OFF")
        return appended[0] if appended else None

    def scrub(self) -> None:
        """See the port: a ``TRUNCATE`` checkpoint of the WAL (every page written since, the
        zeroed ones included, replaces its old image in the database file; the WAL is emptied)."""
        with self._write_lock, unavailable_on_driver_error("cannot scrub now"):
            busy, _, _ = self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StoreUnavailable("readers held old snapshots: the scrub did not complete; retry")

    def keys(self) -> SqliteKeys:
        """The API keys, read on this thread's connection (each call its own snapshot)."""
        return SqliteKeys(self.reader())

    @contextmanager
    def keys_for_update(self) -> Iterator[SqliteKeys]:
        """The API keys inside one write transaction: what is read and written in the block
        commits together (or not at all, when it raises)."""
        with self.write_transaction() as conn:
            yield SqliteKeys(conn)

    def sessions(self) -> SqliteSessions:
        """The console's sessions: read on this thread's connection, written in write
        transactions of their own."""
        return SqliteSessions(self.reader(), self.write_transaction)

    def quarantined(self, tenant: str, *, after_id: int, limit: int) -> list[QuarantineRecord]:
        """Up to ``limit`` of ``tenant``'s quarantined bodies with id > ``after_id``, oldest
        first."""
        return quarantine_rows(self.reader(), tenant, after_id=after_id, limit=limit)

    def quarantine(self, record: QuarantineRecord) -> int:
        """Keep a webhook body in the quarantine, durably once this returns; its id.
        ``StoreUnavailable`` when it cannot be kept."""
        quarantining = unavailable_on_driver_error("the body could not be quarantined")
        with quarantining, self.write_transaction() as conn:
            return quarantine.add(conn, record)

    # -- appends ---------------------------------------------------------------------------
    def append(self, drafts: Sequence[Draft]) -> list[Appended]:
        """Append ``drafts`` atomically and durably (group-committed with concurrent callers:
        ``ledger.group_commit``)."""
        return self.group_commit.append(drafts)

    def append_each(self, calls: Sequence[Sequence[Draft]]) -> list[list[Appended] | Exception]:
        """Append each of ``calls`` as a concurrent ``append`` would, as one group: one
        transaction, one fsync; each call succeeds or fails alone, its error (a domain error,
        or ``StoreUnavailable`` when the group could not be written) in its place.

        For a caller that gathers many independent appends itself (a batch of webhooks): no
        thread hand-offs, and nothing else in this process writes while the group is written.
        """
        return self.group_commit.append_each(calls)

    def append_built(self, build: Build) -> list[Appended]:
        """Append the drafts ``build`` returns, calling it on the writer connection inside the
        append's write transaction: what it reads there is the newest state of the log and its
        projections, and no other append (of this or another process) comes between its reads
        and its entries. For read-then-append decisions (the next policy version).

        Atomic and durable like ``append``, never grouped with other calls; if ``build`` raises
        (a domain error), its error is raised and nothing is written; no drafts, no entries.
        """
        conn = self._wconn
        return self.group_commit.append_built(lambda: build(conn))

    @contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction on the writer connection (maintenance: rebuild)."""
        writer = self._writer
        with self._write_lock, writer.exclusive():
            writer.begin()
            try:
                yield self._wconn
                writer.commit()
            except BaseException:
                writer.abandon()
                raise

    @contextmanager
    def trial_transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction that is always rolled back (compare, never change)."""
        writer = self._writer
        with self._write_lock, writer.exclusive():
            writer.begin()
            try:
                yield self._wconn
            finally:
                writer.abandon()

    def probe_write(self, timeout: float = 1.0) -> None:
        """Raise ``StoreUnavailable`` unless the writer could start a write transaction within
        ``timeout`` seconds (the database is writable and no write holds it longer); nothing
        is written."""
        if not self._write_lock.acquire(timeout=timeout):
            raise StoreUnavailable("the writer stayed busy")
        try:
            with unavailable_on_driver_error("cannot start a write"):
                self._wconn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                try:
                    self._writer.begin()
                    self._writer.abandon()
                finally:
                    self._wconn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        finally:
            self._write_lock.release()

    @property
    def location(self) -> str:
        """The database file's path."""
        return str(self.path)

    def lease(self, job: str) -> FileLease:
        """This process's lease of ``job`` (``ledger.runner``): one per job, kept until
        ``close``."""
        with self._leases_lock:
            if job not in self._leases:
                self._leases[job] = FileLease(self.path, job)
            return self._leases[job]

    def close(self) -> None:
        """Close the writer connection and give up any lease (readers close with their
        threads)."""
        for lease in self._leases.values():
            lease.release()
        self._wconn.close()
        self._writer.close()


class _Writer:
    """The store's side of group commit (``ledger.group_commit.GroupWriter``): the writer
    connection, its transaction and savepoints, and the SQL of an append."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        projectors: list[Projector[sqlite3.Connection]],
        clock: Callable[[], datetime],
    ) -> None:
        self.conn = conn
        self.projectors = projectors
        self._clock = clock
        self._lock_fd = _open_lock_file(path)
        self._reads = _RetractionReads(conn)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock file: writers of other processes wait on it, woken when it is free."""
        if self._lock_fd is None or fcntl is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def begin(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"cannot start a write: {exc}") from exc

    def cursor(self) -> WriteCursor:
        row = self.conn.execute(
            "SELECT position, recorded_at FROM log ORDER BY position DESC LIMIT 1"
        ).fetchone()
        return WriteCursor(0, "") if row is None else WriteCursor(int(row[0]), str(row[1]))

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def abandon(self) -> None:
        """Roll back the writer's transaction, if SQLite has not already done so (it rolls a
        whole transaction back by itself on some errors: disk full, I/O error, interrupt)."""
        if self.conn.in_transaction:
            with suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def savepoint(self) -> None:
        self.conn.execute("SAVEPOINT ticket")

    def release(self) -> None:
        self.conn.execute("RELEASE ticket")

    def rollback_to(self) -> None:
        self.conn.execute("ROLLBACK TO ticket")
        self.conn.execute("RELEASE ticket")

    @staticmethod
    def failure(exc: Exception) -> Exception:
        if isinstance(exc, LedgerError):
            return exc
        if isinstance(exc, sqlite3.OperationalError):
            return StoreUnavailable(f"{NOTHING_WRITTEN}: {exc}")
        return exc

    @staticmethod
    def lost(exc: Exception) -> Exception:
        if isinstance(exc, sqlite3.Error):
            return StoreUnavailable(f"{NOTHING_WRITTEN}: {exc}")
        return exc

    def write(self, drafts: Sequence[Draft], cursor: WriteCursor, project: bool) -> list[Appended]:
        conn = self.conn
        results: list[Appended] = []
        start = len(cursor.items)
        for draft in drafts:
            item = None
            if draft.unchanged is not None:
                _check_unchanged(conn, draft.unchanged)
            retracts = draft.event.position if isinstance(draft.event, EntryRetracted) else None
            if retracts is None or not _taken(conn, draft):
                if retracts is not None:
                    check_retraction(self._reads, draft.tenant, retracts)
                item = self._insert(draft, cursor)  # None: the key is taken
            if item is None:
                results.append(Appended(_original(conn, draft), duplicate=True))
                continue
            cursor.items.append(item)
            results.append(Appended(item.stored, duplicate=False))
        fresh = cursor.items[start:]
        if fresh and project:
            self.project(fresh)
        return results

    def project(self, items: list[Committed]) -> None:
        """Hash ``items`` into the tree and apply them to every projection."""
        tree.add_leaves(self.conn, [item.stored for item in items])
        for projector in self.projectors:
            projector.apply(self.conn, items)

    def _insert(self, draft: Draft, cursor: WriteCursor) -> Committed | None:
        """Insert ``draft`` as the next entry (``ledger.drafting``); ``None`` (nothing written,
        the cursor as it was) when its (tenant, key) is already in the log: the unique index
        answers that in the insert itself."""
        mark = cursor.head, cursor.last_recorded
        made = next_entry(draft, cursor, lambda: format_time(self._clock()))
        item, salt, content = made.committed, made.salt, made.content
        entry, stored, position = item.entry, item.stored, item.stored.position
        inserted = self.conn.execute(
            "INSERT INTO log (position, tenant, key, event_id, type, subaccount, msisdn, "
            "occurred_at, recorded_at, entry, leaf_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (tenant, key) DO NOTHING",
            (
                position,
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
            ),
        ).rowcount
        if not inserted:
            cursor.head, cursor.last_recorded = mark
            return None
        if salt is not None:
            self.conn.execute(
                "INSERT INTO evidence (position, salt, content) VALUES (?, ?, ?)",
                (position, salt, content),
            )
        return item

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class _RetractionReads:
    """The reads of ``ledger.retraction.check_retraction`` on the writer connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def type_at(self, tenant: str, position: int) -> str | None:
        row = self.conn.execute(
            "SELECT type FROM log WHERE position = ? AND tenant = ?", (position, tenant)
        ).fetchone()
        return None if row is None else str(row[0])

    def retraction_of(self, tenant: str, position: int) -> int | None:
        row = self.conn.execute(
            f"SELECT position FROM log WHERE type = 'entry.retracted' AND {RARE_TYPES} "  # noqa: S608
            "AND tenant = ? AND json_extract(CAST(entry AS TEXT), '$.event.position') = ?",
            (tenant, position),
        ).fetchone()
        return None if row is None else int(row[0])


def _open_lock_file(db: Path) -> int | None:
    """The writers' lock file beside ``db`` (created 0600 if need be); ``None`` where it cannot
    be opened (SQLite's own locking still serialises writers, only less promptly)."""
    try:
        flags = os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC
        return os.open(f"{db}-writer-lock", flags, PRIVATE_FILE_MODE)
    except OSError:
        return None


def _taken(conn: sqlite3.Connection, draft: Draft) -> bool:
    """Whether the log already holds an entry with ``draft``'s (tenant, key)."""
    row = conn.execute(
        "SELECT 1 FROM log WHERE tenant = ? AND key = ?", (draft.tenant, draft.key)
    ).fetchone()
    return row is not None


def _original(conn: sqlite3.Connection, draft: Draft) -> StoredEntry:
    """The entry already in the log with ``draft``'s (tenant, key)."""
    row = conn.execute(
        "SELECT position, entry, leaf_hash FROM log WHERE tenant = ? AND key = ?",
        (draft.tenant, draft.key),
    ).fetchone()
    return StoredEntry(*row)


def _check_unchanged(conn: sqlite3.Connection, guard: Unchanged) -> None:
    """Raise ``Stale`` when an entry of ``guard.types`` of its tenant follows its position
    (entries written earlier in this transaction included)."""
    marks = ",".join("?" * len(guard.types))
    found = conn.execute(
        f"SELECT position FROM log WHERE type IN ({marks}) AND {RARE_TYPES} "  # noqa: S608
        "AND position > ? AND tenant = ? LIMIT 1",
        (*guard.types, guard.position, guard.tenant),
    ).fetchone()
    if found is not None:
        raise Stale(f"the settings read changed at position {found[0]}; read again and retry")


def _chunks(values: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def head_of(conn: sqlite3.Connection) -> int:
    """The newest log position ``conn`` sees (0 for an empty log): the one head query."""
    return int(conn.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()[0])


def as_port(store: SqliteLogStore) -> LogStore:
    """``store`` as the log-store port (mypy checks here that the adapter implements it all)."""
    return store
