"""The read model port: typed queries over the log and its projections, and the unit of work.

Every method speaks the domain (tenants, subaccounts, numbers, positions, times); none takes or
returns SQL text, rows, cursors or a driver's connection. An adapter (``projections.sqlite``)
owns the queries and turns its driver's errors into the ledger's own (``StoreUnavailable``).

Guarantees every adapter gives:
- a ``ReadView`` answers every query from one consistent state of the log and its projections,
  whose newest position is ``head()``: reads combined in one view reflect exactly that position;
- a ``ReadModel`` answers each query on its own from the newest committed state, and
  ``snapshot()`` opens a ``ReadView`` for reads that must agree with one another;
- ``UnitOfWork.decide_and_append`` calls ``decide`` with a view bound to the append's own write
  transaction (under the write lock): what it reads is the newest state, and no other append
  comes between its reads and the entries it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

import msgspec

from ledger.checkpoint import Signer
from ledger.checkpoint_log import CheckpointRecord
from ledger.store import Appended, Draft, StoredEntry
from projections.config import PolicyConflict, SubaccountSettings
from projections.decisions import BulkStates, Decision
from projections.eightxeight.outbox import OutboxCounts, Reply
from projections.review import ReviewItem
from projections.timeline import Interval

Evidence = dict[int, tuple[bytes | None, bytes | None]]
"""(salt, content) per position that has an evidence row; both ``None`` once erased."""


class ReviewBacklog(msgspec.Struct, frozen=True):
    """Open review items of one kind across all tenants, and when the oldest was recorded."""

    kind: str
    open: int
    oldest_recorded_at: str


class NumberFact(msgspec.Struct, frozen=True, gc=False):
    """The consent fact that decides a number: the number, its scope (a subaccount, or ``""``
    for tenant-wide) and the entry's position."""

    msisdn: str
    scope: str
    position: int


class FactPage(msgspec.Struct, frozen=True, gc=False):
    """One page of a listing in msisdn order: the facts found, and the cursor to pass as
    ``after`` for the next page (``None``: there is no more)."""

    facts: list[NumberFact]
    cursor: tuple[str, str] | None


class ConsentDay(msgspec.Struct, frozen=True):
    """Opt-outs and opt-ins of one tenant recorded on one UTC day (``YYYY-MM-DD``)."""

    day: str
    opted_out: int
    opted_in: int


class QuarantineSummary(msgspec.Struct, frozen=True):
    """One tenant's quarantine: how many bodies, and when the oldest was received."""

    count: int
    oldest_received_at: str | None


class ReadView(Protocol):
    """Typed queries answered from one consistent state of the log (see the module)."""

    def head(self) -> int:
        """The newest log position this view reflects (0 for an empty log)."""
        ...

    def now(self) -> str:
        """The current time of the store's clock, canonical: the one clock of every "now" (on
        PostgreSQL the database's; a snapshot reads it with its first round trip and keeps
        it)."""
        ...

    # -- configuration ----------------------------------------------------------------------
    def settings(
        self, tenant: str, subaccount: str, *, position: int | None = None, at: str | None = None
    ) -> SubaccountSettings | None:
        """Settings of ``subaccount`` as known at ``position`` (now) and in force at valid time
        ``at`` (any); ``None`` when no such configuration entry exists."""
        ...

    def subaccounts(self, tenant: str) -> list[SubaccountSettings]:
        """The current settings of every known subaccount of ``tenant``, by id."""
        ...

    def revoke_all(self, tenant: str) -> bool:
        """Whether ``tenant`` currently has ``revoke_all`` on (off unless configured)."""
        ...

    def tenant_region(self, tenant: str) -> str | None:
        """The default region ``tenant`` currently has (none unless configured)."""
        ...

    # -- decisions and timelines -------------------------------------------------------------
    def decide(self, tenant: str, subaccount: str, msisdn: str, at: str, known_at: int) -> Decision:
        """The decision for one E.164 number at canonical valid time ``at`` as known at
        position ``known_at`` (see ``projections.decisions`` for the rule)."""
        ...

    def decide_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> dict[str, Decision]:
        """``decide`` for many numbers at once, keyed by number."""
        ...

    def states_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> BulkStates:
        """What ``decide_many`` says (allowed and state only), the lean bulk form."""
        ...

    def intervals(self, tenant: str, subaccount: str, msisdn: str, known_at: int) -> list[Interval]:
        """The consent intervals of (subaccount, msisdn) as known at ``known_at``."""
        ...

    def suppressed(
        self,
        tenant: str,
        subaccount: str | None,
        at: str,
        known_at: int,
        after: tuple[str, str],
        limit: int,
    ) -> FactPage:
        """The numbers ``subaccount`` must not send to at valid time ``at`` as known at
        ``known_at``: those whose deciding fact (the rule of ``decide``) is an opt-out, each
        with that fact. ``subaccount`` ``None``: the numbers that *every* subaccount must not
        send to (a tenant-wide opt-out decides, and no subaccount's own later opt-in lifts it
        for that subaccount). Examines at most ``limit`` numbers of ``tenant`` that have
        consent facts, in msisdn order after ``after[0]`` (``("", "")`` to start); a page
        may hold fewer facts than ``limit`` and still have a ``cursor``."""
        ...

    def consent_states(
        self, tenant: str, at: str, known_at: int, after: tuple[str, str], limit: int
    ) -> FactPage:
        """Per (msisdn, scope) of ``tenant`` — scope a subaccount or ``""`` for tenant-wide —
        the latest consent fact (by occurred time, ties by position) not retracted as known at
        ``known_at`` and occurred at or before ``at``: up to ``limit`` pairs in (msisdn,
        scope) order after ``after`` (``("", "")`` to start)."""
        ...

    def superseded(self, tenant: str, before: str, after: int, limit: int) -> list[int]:
        """Positions (> ``after``, ascending, at most ``limit``) of ``tenant``'s consent entries
        that still have evidence and stopped deciding anything at or before canonical time
        ``before``: a later consent entry of the same number and scope (later by occurred time,
        ties by position; not retracted) was recorded by then, or the entry was retracted by an
        entry recorded by then. An entry that still decides a number's state is never one."""
        ...

    def configured_tenants(self) -> list[str]:
        """Every tenant that has a ``tenant.configured`` entry, sorted."""
        ...

    def position_known_at(self, recorded_at: str) -> int:
        """The last log position recorded at or before canonical ``recorded_at`` (0 if none)."""
        ...

    # -- entries and evidence ----------------------------------------------------------------
    def entries_at(self, positions: Sequence[int]) -> list[StoredEntry]:
        """The entries at ``positions`` that exist, in position order."""
        ...

    def number_entries(self, tenant: str, msisdn: str) -> list[StoredEntry]:
        """Every entry of ``tenant`` about ``msisdn``, in position order."""
        ...

    def targeting_entries(self, tenant: str, positions: Sequence[int]) -> list[StoredEntry]:
        """The retractions and review resolutions of ``tenant`` targeting ``positions``."""
        ...

    def configuration_entries(self, tenant: str, subaccount: str) -> list[StoredEntry]:
        """The configuration entries of ``subaccount`` and of ``tenant``, in position order."""
        ...

    def evidence(self, positions: Sequence[int]) -> Evidence:
        """The evidence of ``positions`` that have some (see ``Evidence``)."""
        ...

    # -- review queue ------------------------------------------------------------------------
    def review_item(self, tenant: str, position: int) -> ReviewItem | None:
        """The review item at ``position`` of ``tenant``, open or closed."""
        ...

    def open_review_items(
        self,
        tenant: str,
        *,
        after: int = 0,
        limit: int = 1000,
        kind: str | None = None,
        subaccount: str | None = None,
        recorded_before: str | None = None,
    ) -> list[ReviewItem]:
        """Up to ``limit`` open items of ``tenant`` with position > ``after``, oldest first;
        only those of ``kind``, naming ``subaccount`` (``ReviewItem.subaccount``) and recorded
        strictly before canonical ``recorded_before``, for each filter given."""
        ...

    def review_backlog(self, tenant: str | None = None) -> list[ReviewBacklog]:
        """Open review items per kind across all tenants, or of ``tenant`` alone (kinds with
        none left out)."""
        ...

    def entries_of_types(
        self, tenant: str, types: Sequence[str], *, subaccount: str | None = None
    ) -> list[StoredEntry]:
        """Every entry of ``tenant`` whose type is one of ``types`` (rare types only: never
        ``consent.revoked``, ``consent.granted``, ``help.requested``, ``review.flagged``), of
        ``subaccount`` when given, in position order (``ValueError`` for a high-volume type)."""
        ...

    # -- the outbox (projections.eightxeight.outbox) -----------------------------------------
    def open_replies(self, *, after: int = 0, limit: int = 100) -> list[Reply]:
        """Up to ``limit`` outbox rows in an open state (pending, attempted, deferred) with
        position > ``after``, oldest first, across tenants."""
        ...

    def replies_at(self, position: int) -> list[Reply]:
        """The outbox rows (reply, blacklist) of the entry at ``position``."""
        ...

    def reply_for_message(self, tenant: str, event_id: str) -> Reply | None:
        """The reply row of ``tenant`` whose ``clientMessageId`` (the answered entry's event
        id) is ``event_id``."""
        ...

    def outbox_counts(self) -> OutboxCounts:
        """Outbox rows per action and state, and the oldest open row's recorded time."""
        ...

    # -- operations --------------------------------------------------------------------------
    def projection_positions(self) -> dict[str, int]:
        """The last log position each projection has applied, by projection name."""
        ...

    def quarantine_size(self) -> int:
        """Webhook bodies in quarantine, across all tenants."""
        ...

    def quarantine_summary(self, tenant: str) -> QuarantineSummary:
        """How many bodies of ``tenant`` are in quarantine, and the oldest one's receive time."""
        ...

    def consent_per_day(self, tenant: str, since: str) -> list[ConsentDay]:
        """Opt-outs (``consent.revoked``) and opt-ins (``consent.granted``) of ``tenant``
        recorded at or after canonical ``since``, counted per UTC day of their recorded time,
        oldest day first; days with neither are left out. Retracted entries still count (they
        were recorded)."""
        ...

    def policy_version_conflicts(self) -> list[PolicyConflict]:
        """Every policy version of a subaccount that names more than one policy (an invariant
        the projector enforces on new entries; this reports older breaks)."""
        ...

    def pending_migrations(self) -> list[str]:
        """Names of the schema migrations not yet applied (none when the schema is current)."""
        ...

    # -- tamper evidence ---------------------------------------------------------------------
    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The newest signed checkpoint."""
        ...

    def checkpoints_since(self, size: int, limit: int) -> list[CheckpointRecord]:
        """Up to ``limit`` checkpoints of size >= ``size``, oldest first."""
        ...

    def tree_size(self) -> int:
        """The number of leaves in the Merkle tree."""
        ...

    def inclusion_proof(self, position: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of ``position`` in the tree of ``size`` leaves."""
        ...

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The RFC 9162 consistency proof from the tree of ``first`` to that of ``second``."""
        ...


class ReadModel(ReadView, Protocol):
    """The read model: each query from the newest committed state, or several in a snapshot."""

    def snapshot(self) -> AbstractContextManager[ReadView]:
        """A view answering every query from one consistent state (see the module)."""
        ...


Decide = Callable[[ReadView], Sequence[Draft]]
"""A read-then-append decision: reads what it needs from the view, returns the drafts."""


class UnitOfWork(Protocol):
    """Read-then-append decisions, atomic with the append."""

    def decide_and_append(self, decide: Decide) -> list[Appended]:
        """Append the drafts ``decide`` returns, calling it with a view bound to the append's
        write transaction (see the module); if it raises, nothing is written."""
        ...


class CheckpointSigning(Protocol):
    """Signing checkpoints of the store's tree (``ledger.checkpoint_log.sign`` checks each new
    one against the previous)."""

    def sign(
        self, signer: Signer, origin: str, now: datetime, *, min_interval: float | None = None
    ) -> tuple[CheckpointRecord | None, bool]:
        """A checkpoint of the whole log if it grew, and whether it was signed now:
        ``(None, False)`` when ``min_interval`` seconds have not passed since the latest one;
        the latest one, unsigned now, when it already covers the newest entry. Several
        processes or nodes never sign twice for one interval. ``TamperDetected`` when the tree
        is not consistent with the latest checkpoint; ``Conflict`` when the database already
        names another verifier key than ``signer``'s (one key per log)."""
        ...


class Maintenance(Protocol):
    """Dropping and replaying the projections."""

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Drop and replay every projection atomically; returns the entries replayed."""
        ...

    def matches_rebuild(self) -> bool:
        """Whether the live projections equal a fresh replay (nothing is changed)."""
        ...
