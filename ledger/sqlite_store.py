"""The embedded SQLite adapter of the log store (the default store).

Guarantees beyond the port (``ledger.store``): WAL with ``synchronous=FULL`` (an acknowledged
append survives a crash or power loss); one writer at a time across processes (``BEGIN
IMMEDIATE``); concurrent ``append`` calls in one process are group-committed — one transaction and
one fsync for everything waiting — while each call still succeeds or fails alone (should any call
fail, the group is rolled back and written again, a savepoint per call); projectors run inside
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
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ledger import tree
from ledger.entries import (
    Entry,
    encode_entry,
    encode_evidence,
    evidence_digest,
    leaf_hash,
    new_salt,
)
from ledger.errors import LedgerError, NotFound, RetractionError, Stale, StoreUnavailable
from ledger.events import RETRACTABLE_TYPES, EntryRetracted, event_type
from ledger.files import PRIVATE_FILE_MODE, create_private_file, make_private_dir
from ledger.migrate import migrate
from ledger.store import Appended, Committed, Draft, Projector, StoredEntry, Unchanged
from ledger.timefmt import format_time, utc_now

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy timeout alone serialises
    fcntl = None  # type: ignore[assignment]

BUSY_TIMEOUT_MS = 30_000
GATHER_SECONDS = 0.0002
"""The longest a group's leader waits for the callers of recent groups to join it (a fraction
of the commit it saves them)."""
_NOTHING_WRITTEN = "the write failed and nothing was written"
_INTERRUPTED = "the write was interrupted; whether it was written is unknown"
MAX_POSITION = 2**63 - 1
"""The largest position SQLite can store."""
RARE_TYPES = (
    "type NOT IN ('consent.revoked', 'consent.granted', 'help.requested', 'review.flagged')"
)
"""The condition of the partial index ``log_by_rare_type`` (migration 0006): a query that
searches the log by a rare entry type must include it verbatim, or SQLite scans the log."""


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with the ledger's pragmas (WAL, synchronous=FULL).

    A writer creates what is missing privately: the database's directory 0700, the database
    0600 — and so its ``-wal`` and ``-shm`` files, which SQLite creates with the database
    file's own mode.
    """
    if not readonly:
        make_private_dir(Path(path).parent)
        create_private_file(Path(path))
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        _use_wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting (like busy_timeout) while another process holds the file.

    Changing the journal mode can fail with "database is locked" at once, without calling the
    busy handler, when another process opens a fresh database at the same moment.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


Build = Callable[[sqlite3.Connection], Sequence[Draft]]
"""Makes the drafts of an append from what it reads inside the append's write transaction."""


@dataclass
class _Ticket:
    drafts: Sequence[Draft]
    build: Build | None = None
    """Called for the drafts inside the write transaction (a ticket committed alone)."""
    results: list[Appended] | None = None
    error: BaseException | None = None
    done: bool = False
    wake: threading.Lock = field(default_factory=_held_lock)
    """Held until the ticket is done, or until its caller is to commit the next group (a bare
    lock: far cheaper than ``threading.Event``, which a busy writer pays for per append)."""


@dataclass
class _Cursor:
    head: int
    last_recorded: str
    items: list[Committed] = field(default_factory=list)
    now: str | None = None
    """The group's recorded time: read from the clock once, at the group's first new entry."""


class _Regroup(Exception):
    """A projector refused a group's entries: write the group again, one call at a time."""


class SqliteLogStore:
    """The log store on one SQLite file; safe to share between threads and processes."""

    def __init__(
        self,
        path: str | Path,
        projectors: Sequence[Projector[sqlite3.Connection]] = (),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.path = Path(path)
        self.projectors = list(projectors)
        self._clock = clock
        self._local = threading.local()
        self._pending: list[_Ticket] = []
        self._pending_lock = threading.Lock()
        self._leading = False  # a caller is committing (or about to commit) the pending group
        self._expected = 0  # tickets expected in a group: recent groups' size, decaying
        self._gathering = False  # the leader waits (on ``_gathered``) for the group to fill
        self._gathered = _held_lock()
        self._write_lock = threading.Lock()
        self._wconn = connect(self.path)
        self._lock_fd = _open_lock_file(self.path)
        try:
            migrate(self._wconn)
            self._catch_up_tree()
        except BaseException:
            self.close()
            raise

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

    def head(self) -> int:
        """The newest committed position (0 when empty)."""
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
        with self._write_lock:
            cur = self._wconn.execute(
                "UPDATE evidence SET salt = NULL, content = NULL, erased_at = ?, "
                "erase_reason = ? WHERE position = ? AND erased_at IS NULL",
                (format_time(self._clock()), reason, position),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no unerased evidence at position {position}")

    # -- appends ---------------------------------------------------------------------------
    def append(self, drafts: Sequence[Draft]) -> list[Appended]:
        """Append ``drafts`` atomically and durably (group-committed with concurrent callers).

        One caller at a time commits everything pending as one group; the others sleep until
        their entries are written or it is their turn to commit the next group.
        """
        ticket = _Ticket(drafts)
        with self._pending_lock:
            self._pending.append(ticket)
            lead, self._leading = not self._leading, True
            if self._gathering and len(self._pending) >= self._expected:
                self._gathering = False
                self._gathered.release()  # the leader waiting for this group to fill goes on
        if not lead:
            ticket.wake.acquire()
        if not ticket.done:
            self._lead()
        if ticket.error is not None:
            raise ticket.error
        assert ticket.results is not None
        return ticket.results

    def append_each(self, calls: Sequence[Sequence[Draft]]) -> list[list[Appended] | Exception]:
        """Append each of ``calls`` as a concurrent ``append`` would, as one group: one
        transaction, one fsync; each call succeeds or fails alone, its error (a domain error,
        or ``StoreUnavailable`` when the group could not be written) in its place.

        For a caller that gathers many independent appends itself (a batch of webhooks): no
        thread hand-offs, and nothing else in this process writes while the group is written.
        """
        tickets = [_Ticket(drafts) for drafts in calls]
        if tickets:
            with self._write_lock:
                self._commit_group(tickets)
        out: list[list[Appended] | Exception] = []
        for ticket in tickets:
            error = ticket.error
            if error is not None and not isinstance(error, Exception):
                raise error  # an interrupt, not an error of this call
            out.append(error if error is not None else (ticket.results or []))
        return out

    def append_built(self, build: Build) -> list[Appended]:
        """Append the drafts ``build`` returns, calling it on the writer connection inside the
        append's write transaction: what it reads there is the newest state of the log and its
        projections, and no other append (of this or another process) comes between its reads
        and its entries. For read-then-append decisions (the next policy version).

        Atomic and durable like ``append``, never grouped with other calls; if ``build`` raises
        (a domain error), its error is raised and nothing is written; no drafts, no entries.
        """
        ticket = _Ticket((), build=build)
        with self._write_lock:
            self._commit_group([ticket])
        if ticket.error is not None:
            raise ticket.error
        return ticket.results or []

    def _lead(self) -> None:
        """Commit every pending ticket as one group, wake their callers, pass the lead on."""
        group: list[_Ticket] = []
        try:
            self._gather()
            with self._write_lock:
                with self._pending_lock:
                    group, self._pending = self._pending, []
                self._expected = max(len(group), self._expected - 1)
                self._commit_group(group)
        finally:
            for ticket in group:
                if not ticket.done:  # interrupted: report it, never leave a caller waiting
                    ticket.results, ticket.error = None, StoreUnavailable(_INTERRUPTED)
                    ticket.done = True
                ticket.wake.release()
            with self._pending_lock:
                if self._pending:
                    self._pending[0].wake.release()  # not done: its caller commits the next group
                else:
                    self._leading = False

    def _gather(self) -> None:
        """Give the callers the last groups woke (still running) a moment to join this group:
        until as many tickets wait as recent groups had, or ``GATHER_SECONDS`` pass. A lone
        writer never waits; the expectation drops by one per group when writers go away."""
        if self._expected <= 1:
            return
        with self._pending_lock:
            if len(self._pending) >= self._expected:
                return
            self._gathering = True
        # Sleep until the caller that fills the group wakes us: the callers run one after the
        # other meanwhile, instead of handing the interpreter back to us between them.
        filled = self._gathered.acquire(timeout=GATHER_SECONDS)
        with self._pending_lock:
            if self._gathering:  # timed out, and no caller filled the group
                self._gathering = False
            elif not filled:  # filled just after the timeout: hold the lock again for next time
                self._gathered.acquire(blocking=False)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the lock file: writers of other processes wait on it, woken when it is free."""
        if self._lock_fd is None or fcntl is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction on the writer connection, committed when the block
        ends and rolled back if it raises (maintenance: rebuild; API keys)."""
        with self._write_lock, self._exclusive():
            self._begin()
            try:
                yield self._wconn
                self._wconn.execute("COMMIT")
            except BaseException:
                self._abandon()
                raise

    @contextmanager
    def trial_transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction that is always rolled back (compare, never change)."""
        with self._write_lock, self._exclusive():
            self._begin()
            try:
                yield self._wconn
            finally:
                self._abandon()

    def probe_write(self, timeout: float = 1.0) -> None:
        """Raise ``StoreUnavailable`` unless the writer could start a write transaction within
        ``timeout`` seconds (the database is writable and no write holds it longer); nothing
        is written."""
        if not self._write_lock.acquire(timeout=timeout):
            raise StoreUnavailable("the writer stayed busy")
        try:
            self._wconn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            try:
                self._begin()
                self._abandon()
            finally:
                self._wconn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        finally:
            self._write_lock.release()

    def _abandon(self) -> None:
        """Roll back the writer's transaction, if SQLite has not already done so (it rolls a
        whole transaction back by itself on some errors: disk full, I/O error, interrupt)."""
        if self._wconn.in_transaction:
            with suppress(sqlite3.Error):
                self._wconn.execute("ROLLBACK")

    def _begin(self) -> None:
        try:
            self._wconn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"cannot start a write: {exc}") from exc

    def _commit_group(self, group: list[_Ticket]) -> None:
        """Write ``group`` in one transaction; mark every ticket done.

        A ticket that fails alone (a domain error, a full database refusing one statement)
        fails and the others go on (``_write_tickets``); if the whole transaction is lost
        (SQLite rolled it back, or COMMIT failed) every ticket fails and nothing was written.
        """
        with self._exclusive():
            self._commit_tickets(group, isolated=len(group) == 1)

    def _commit_tickets(self, group: list[_Ticket], *, isolated: bool) -> None:
        try:
            self._begin()
        except StoreUnavailable as exc:
            self._finish(group, exc)
            return
        try:
            self._write_tickets(group, isolated=isolated)
            if self._wconn.in_transaction:  # not when a lone ticket failed and was rolled back
                self._wconn.execute("COMMIT")
        except _Regroup:
            self._abandon()
            for ticket in group:
                ticket.results, ticket.error = None, None
            self._commit_tickets(group, isolated=True)
            return
        except Exception as exc:
            self._abandon()
            lost = isinstance(exc, sqlite3.Error)
            self._finish(group, StoreUnavailable(f"{_NOTHING_WRITTEN}: {exc}") if lost else exc)
            return
        self._finish(group, None)

    def _write_tickets(self, group: list[_Ticket], *, isolated: bool) -> None:
        """Write every ticket of ``group``, each of which must succeed or fail alone.

        A lone ticket needs no savepoint: should it fail, the whole transaction is rolled back.
        Otherwise the group is first written as one (no savepoints, hashed and projected at
        once); should anything in it fail, ``_Regroup`` has the group written again
        ``isolated``: each ticket under its own savepoint, hashed and projected under it.
        """
        conn = self._wconn
        cursor = self._cursor(conn)
        if len(group) == 1:
            self._write_lone_ticket(conn, group[0], cursor)
        elif not isolated:
            self._write_together(conn, group, cursor)
        else:
            for ticket in group:
                self._write_isolated(conn, ticket, cursor)

    def _write_together(
        self, conn: sqlite3.Connection, group: list[_Ticket], cursor: _Cursor
    ) -> None:
        try:
            for ticket in group:
                ticket.results = self._append_drafts(conn, ticket.drafts, cursor, False)
            if cursor.items:
                self._project(conn, cursor.items)
        except Exception as exc:
            if not conn.in_transaction:
                raise  # the whole transaction is gone: every ticket fails
            raise _Regroup from exc

    def _write_isolated(self, conn: sqlite3.Connection, ticket: _Ticket, cursor: _Cursor) -> None:
        conn.execute("SAVEPOINT ticket")
        mark = (cursor.head, cursor.last_recorded, len(cursor.items))
        try:
            ticket.results = self._append_drafts(conn, ticket.drafts, cursor, True)
            conn.execute("RELEASE ticket")
        except Exception as exc:
            if not conn.in_transaction:
                raise  # the whole transaction is gone: every ticket fails
            conn.execute("ROLLBACK TO ticket")
            conn.execute("RELEASE ticket")
            cursor.head, cursor.last_recorded = mark[0], mark[1]
            del cursor.items[mark[2] :]
            ticket.results, ticket.error = None, _domain_error(exc)

    def _write_lone_ticket(
        self, conn: sqlite3.Connection, ticket: _Ticket, cursor: _Cursor
    ) -> None:
        try:
            if ticket.build is not None:
                ticket.drafts = ticket.build(conn)
            ticket.results = self._append_drafts(conn, ticket.drafts, cursor, True)
        except Exception as exc:
            if not conn.in_transaction:
                raise  # SQLite rolled the transaction back itself
            self._abandon()
            ticket.results, ticket.error = None, _domain_error(exc)

    @staticmethod
    def _finish(group: list[_Ticket], error: BaseException | None) -> None:
        for ticket in group:
            if error is not None:
                ticket.results, ticket.error = None, error
            ticket.done = True

    @staticmethod
    def _cursor(conn: sqlite3.Connection) -> _Cursor:
        row = conn.execute(
            "SELECT position, recorded_at FROM log ORDER BY position DESC LIMIT 1"
        ).fetchone()
        return _Cursor(0, "") if row is None else _Cursor(int(row[0]), str(row[1]))

    def _append_drafts(
        self, conn: sqlite3.Connection, drafts: Sequence[Draft], cursor: _Cursor, project: bool
    ) -> list[Appended]:
        results: list[Appended] = []
        start = len(cursor.items)
        for draft in drafts:
            item = None
            if draft.unchanged is not None:
                _check_unchanged(conn, draft.unchanged)
            if not isinstance(draft.event, EntryRetracted) or not _taken(conn, draft):
                item = self._insert(conn, draft, cursor)  # None: the key is taken
            if item is None:
                results.append(Appended(_original(conn, draft), duplicate=True))
                continue
            cursor.items.append(item)
            results.append(Appended(item.stored, duplicate=False))
        fresh = cursor.items[start:]
        if fresh and project:
            self._project(conn, fresh)
        return results

    def _project(self, conn: sqlite3.Connection, items: list[Committed]) -> None:
        """Hash ``items`` into the tree and apply them to every projection."""
        tree.add_leaves(conn, [item.stored for item in items])
        for projector in self.projectors:
            projector.apply(conn, items)

    def _insert(self, conn: sqlite3.Connection, draft: Draft, cursor: _Cursor) -> Committed | None:
        """Insert ``draft`` as the next entry; ``None`` (nothing written) when its (tenant, key)
        is already in the log: the unique index answers that in the insert itself."""
        if isinstance(draft.event, EntryRetracted):
            _check_retraction(conn, draft.tenant, draft.event.position)
        if cursor.now is None:
            cursor.now = max(format_time(self._clock()), cursor.last_recorded)
        recorded = cursor.now
        position = cursor.head + 1
        salt = content = digest = None
        if draft.evidence is not None:
            salt, content = new_salt(), encode_evidence(draft.evidence)
            digest = evidence_digest(salt, content)
        entry = Entry(
            position=position,
            event_id=str(uuid.uuid4()),
            key=draft.key,
            tenant=draft.tenant,
            subaccount=draft.subaccount,
            msisdn=draft.msisdn,
            type=event_type(draft.event),
            occurred_at=draft.occurred_at or recorded,
            recorded_at=recorded,
            event=draft.event,
            evidence_digest=digest,
        )
        data = encode_entry(entry)
        stored = StoredEntry(position, data, leaf_hash(data))
        inserted = conn.execute(
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
                data,
                stored.leaf_hash,
            ),
        ).rowcount
        if not inserted:
            return None
        if salt is not None:
            conn.execute(
                "INSERT INTO evidence (position, salt, content) VALUES (?, ?, ?)",
                (position, salt, content),
            )
        cursor.head, cursor.last_recorded = position, recorded
        return Committed(stored, entry)

    def close(self) -> None:
        """Close the writer connection (readers close with their threads)."""
        self._wconn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


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


def _check_retraction(conn: sqlite3.Connection, tenant: str, target: int) -> None:
    row = None
    if 0 < target <= MAX_POSITION:
        row = conn.execute("SELECT tenant, type FROM log WHERE position = ?", (target,)).fetchone()
    if row is None or row[0] != tenant:
        raise RetractionError(f"there is no entry at position {target} to retract")
    if row[1] not in RETRACTABLE_TYPES:
        raise RetractionError(f"a {row[1]} entry (position {target}) cannot be retracted")
    again = conn.execute(
        f"SELECT position FROM log WHERE type = 'entry.retracted' AND {RARE_TYPES} "  # noqa: S608
        "AND tenant = ? AND json_extract(CAST(entry AS TEXT), '$.event.position') = ?",
        (tenant, target),
    ).fetchone()
    if again is not None:
        raise RetractionError(f"position {target} was already retracted by position {again[0]}")


def _domain_error(exc: Exception) -> Exception:
    if isinstance(exc, LedgerError):
        return exc
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(f"{_NOTHING_WRITTEN}: {exc}")
    return exc


def head_of(conn: sqlite3.Connection) -> int:
    """The newest log position ``conn`` sees (0 for an empty log): the one head query."""
    return int(conn.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()[0])
