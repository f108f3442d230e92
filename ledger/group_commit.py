"""Group commit, for any storage adapter: concurrent appends in one process share one write
transaction (and one durable commit), while each call still succeeds or fails alone.

Guarantees: one caller at a time (the leader) commits everything pending as one group, taken
once the write transaction has begun (after the engine's write lock is acquired, so whoever
arrived while the leader waited for it is in the group); the others sleep until their entries
are written or it is their turn to lead the next group, and no caller is ever left waiting (an
interrupted group fails every call it held with ``StoreUnavailable``). A group is first written
as one; should any call in it fail, the group is rolled back and written again, each call under
its own savepoint, so a failing call fails alone and the others are written. Should the whole
transaction be lost (the engine rolled it back, or the commit failed), every call of the group
fails and nothing was written. Nothing else in this process writes through the adapter while a
group is written (``write_lock``).

The adapter supplies the transaction, the savepoints and the writing of one call's drafts
(``GroupWriter``); this module never names an engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from ledger.errors import StoreUnavailable
from ledger.store import Appended, Committed, Draft

GATHER_SECONDS = 0.0002
"""The longest a group's leader waits for the callers of recent groups to join it (a fraction
of the commit it saves them)."""
NOTHING_WRITTEN = "the write failed and nothing was written"
INTERRUPTED = "the write was interrupted; whether it was written is unknown"


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class WriteCursor:
    """Where a write transaction stands: the head it has reached and the newest recorded time
    (so positions stay dense and recorded times never decrease), and what it wrote so far."""

    head: int
    last_recorded: str
    items: list[Committed] = field(default_factory=list)
    now: str | None = None
    """The group's recorded time: read from the clock once, at the group's first new entry."""

    def mark(self) -> tuple[int, str, int]:
        """A point to return to (``restore``) when a savepoint is rolled back."""
        return self.head, self.last_recorded, len(self.items)

    def restore(self, mark: tuple[int, str, int]) -> None:
        """Forget what was written since ``mark``."""
        self.head, self.last_recorded = mark[0], mark[1]
        del self.items[mark[2] :]


@dataclass
class Ticket:
    """One call waiting to be written (and, once ``done``, its outcome)."""

    drafts: Sequence[Draft]
    build: Callable[[], Sequence[Draft]] | None = None
    """Makes the drafts inside the write transaction (a ticket committed alone)."""
    results: list[Appended] | None = None
    error: BaseException | None = None
    done: bool = False
    wake: threading.Lock = field(default_factory=_held_lock)
    """Held until the ticket is done, or until its caller is to commit the next group (a bare
    lock: far cheaper than ``threading.Event``, which a busy writer pays for per append)."""


class GroupWriter(Protocol):
    """What an adapter gives the scheduler: one write transaction at a time on its writer."""

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the writer against writers of other processes while a group is written."""
        ...

    def begin(self) -> None:
        """Start a write transaction; ``StoreUnavailable`` when none can start now."""
        ...

    def cursor(self) -> WriteCursor:
        """Where the transaction just begun stands (the log's head)."""
        ...

    def commit(self) -> None:
        """Commit the transaction durably."""
        ...

    def abandon(self) -> None:
        """Roll the transaction back, unless the engine already did."""
        ...

    def in_transaction(self) -> bool:
        """Whether the transaction is still open (an engine rolls it back on some errors)."""
        ...

    def savepoint(self) -> None:
        """Open a savepoint for one call."""
        ...

    def release(self) -> None:
        """Keep what was written since the savepoint, and close it."""
        ...

    def rollback_to(self) -> None:
        """Undo what was written since the savepoint, and close it."""
        ...

    def write(self, drafts: Sequence[Draft], cursor: WriteCursor, project: bool) -> list[Appended]:
        """Write one call's drafts after ``cursor`` (advancing it); hash them into the tree and
        apply them to the projections when ``project``. May raise a domain error."""
        ...

    def project(self, items: list[Committed]) -> None:
        """Hash ``items`` into the tree and apply them to every projection."""
        ...

    def failure(self, exc: Exception) -> Exception:
        """What the caller of a call that failed alone is told (a driver error becomes a
        ledger error)."""
        ...

    def lost(self, exc: Exception) -> Exception:
        """What every caller of a group whose transaction was lost is told."""
        ...


class _Regroup(Exception):
    """A call of a group failed: write the group again, one call at a time."""


class GroupCommit:
    """The leader/follower scheduler of one adapter's appends; safe to share between threads."""

    def __init__(self, writer: GroupWriter) -> None:
        self.writer = writer
        self.write_lock = threading.Lock()
        """Held while anything in this process writes through the adapter."""
        self.pending: list[Ticket] = []
        self._pending_lock = threading.Lock()
        self._leading = False  # a caller is committing (or about to commit) the pending group
        self._expected = 0  # tickets expected in a group: recent groups' size, decaying
        self._gathering = False  # the leader waits (on ``_gathered``) for the group to fill
        self._gathered = _held_lock()

    def append(self, drafts: Sequence[Draft]) -> list[Appended]:
        """Append ``drafts`` atomically and durably (group-committed with concurrent callers).

        One caller at a time commits everything pending as one group; the others sleep until
        their entries are written or it is their turn to commit the next group.
        """
        ticket = Ticket(drafts)
        with self._pending_lock:
            self.pending.append(ticket)
            lead, self._leading = not self._leading, True
            if self._gathering and len(self.pending) >= self._expected:
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
        transaction, one commit; each call succeeds or fails alone, its error (a domain error,
        or ``StoreUnavailable`` when the group could not be written) in its place.

        For a caller that gathers many independent appends itself (a batch of webhooks): no
        thread hand-offs, and nothing else in this process writes while the group is written.
        """
        tickets = [Ticket(drafts) for drafts in calls]
        if tickets:
            with self.write_lock:
                self._commit_group(tickets)
        out: list[list[Appended] | Exception] = []
        for ticket in tickets:
            error = ticket.error
            if error is not None and not isinstance(error, Exception):
                raise error  # an interrupt, not an error of this call
            out.append(error if error is not None else (ticket.results or []))
        return out

    def append_built(self, build: Callable[[], Sequence[Draft]]) -> list[Appended]:
        """Append the drafts ``build`` returns, calling it inside the append's write
        transaction, never grouped with other calls; if ``build`` raises (a domain error), its
        error is raised and nothing is written; no drafts, no entries."""
        ticket = Ticket((), build=build)
        with self.write_lock:
            self._commit_group([ticket])
        if ticket.error is not None:
            raise ticket.error
        return ticket.results or []

    def _lead(self) -> None:
        """Commit every pending ticket as one group, wake their callers, pass the lead on."""
        group: list[Ticket] = []
        try:
            self._gather()
            with self.write_lock, self.writer.exclusive():
                began: StoreUnavailable | None = None
                try:
                    self.writer.begin()  # waits for the engine's write lock
                except StoreUnavailable as exc:
                    began = exc
                with self._pending_lock:  # whoever came while we waited joins this group
                    group, self.pending = self.pending, []
                self._expected = max(len(group), self._expected - 1)
                if began is not None:
                    self._finish(group, began)
                else:
                    self._commit_tickets(group, isolated=len(group) == 1, begun=True)
        finally:
            for ticket in group:
                if not ticket.done:  # interrupted: report it, never leave a caller waiting
                    ticket.results, ticket.error = None, StoreUnavailable(INTERRUPTED)
                    ticket.done = True
                ticket.wake.release()
            with self._pending_lock:
                if self.pending:
                    self.pending[0].wake.release()  # not done: its caller commits the next group
                else:
                    self._leading = False

    def _gather(self) -> None:
        """Give the callers the last groups woke (still running) a moment to join this group:
        until as many tickets wait as recent groups had, or ``GATHER_SECONDS`` pass. A lone
        writer never waits; the expectation drops by one per group when writers go away."""
        if self._expected <= 1:
            return
        with self._pending_lock:
            if len(self.pending) >= self._expected:
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

    def _commit_group(self, group: list[Ticket]) -> None:
        """Write ``group`` in one transaction; mark every ticket done.

        A ticket that fails alone (a domain error, a full database refusing one statement)
        fails and the others go on (``_write_tickets``); if the whole transaction is lost
        (the engine rolled it back, or the commit failed) every ticket fails and nothing was
        written.
        """
        with self.writer.exclusive():
            self._commit_tickets(group, isolated=len(group) == 1)

    def _commit_tickets(self, group: list[Ticket], *, isolated: bool, begun: bool = False) -> None:
        writer = self.writer
        if not begun:
            try:
                writer.begin()
            except StoreUnavailable as exc:
                self._finish(group, exc)
                return
        try:
            self._write_tickets(group, isolated=isolated)
            if writer.in_transaction():  # not when a lone ticket failed and was rolled back
                writer.commit()
        except _Regroup:
            writer.abandon()
            for ticket in group:
                ticket.results, ticket.error = None, None
            self._commit_tickets(group, isolated=True)
            return
        except Exception as exc:
            writer.abandon()
            self._finish(group, writer.lost(exc))
            return
        self._finish(group, None)

    def _write_tickets(self, group: list[Ticket], *, isolated: bool) -> None:
        """Write every ticket of ``group``, each of which must succeed or fail alone.

        A lone ticket needs no savepoint: should it fail, the whole transaction is rolled back.
        Otherwise the group is first written as one (no savepoints, hashed and projected at
        once); should anything in it fail, ``_Regroup`` has the group written again
        ``isolated``: each ticket under its own savepoint, hashed and projected under it.
        """
        cursor = self.writer.cursor()
        if len(group) == 1:
            self._write_lone_ticket(group[0], cursor)
        elif not isolated:
            self._write_together(group, cursor)
        else:
            for ticket in group:
                self._write_isolated(ticket, cursor)

    def _write_together(self, group: list[Ticket], cursor: WriteCursor) -> None:
        writer = self.writer
        try:
            for ticket in group:
                ticket.results = writer.write(ticket.drafts, cursor, False)
            if cursor.items:
                writer.project(cursor.items)
        except Exception as exc:
            if not writer.in_transaction():
                raise  # the whole transaction is gone: every ticket fails
            raise _Regroup from exc

    def _write_isolated(self, ticket: Ticket, cursor: WriteCursor) -> None:
        writer = self.writer
        writer.savepoint()
        mark = cursor.mark()
        try:
            ticket.results = writer.write(ticket.drafts, cursor, True)
            writer.release()
        except Exception as exc:
            if not writer.in_transaction():
                raise  # the whole transaction is gone: every ticket fails
            writer.rollback_to()
            cursor.restore(mark)
            ticket.results, ticket.error = None, writer.failure(exc)

    def _write_lone_ticket(self, ticket: Ticket, cursor: WriteCursor) -> None:
        writer = self.writer
        try:
            if ticket.build is not None:
                ticket.drafts = ticket.build()
            ticket.results = writer.write(ticket.drafts, cursor, True)
        except Exception as exc:
            if not writer.in_transaction():
                raise  # the engine rolled the transaction back itself
            writer.abandon()
            ticket.results, ticket.error = None, writer.failure(exc)

    @staticmethod
    def _finish(group: list[Ticket], error: BaseException | None) -> None:
        for ticket in group:
            if error is not None:
                ticket.results, ticket.error = None, error
            ticket.done = True
