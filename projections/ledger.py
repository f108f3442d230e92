"""``ConsentLedger``: the log store wired to its projections, and the reads built on them.

Guarantees: every write goes through the store's append (atomic, durable, projections updated in
the same transaction); every read that combines several queries runs in one read snapshot, so an
answer reflects exactly the log position it reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypedDict, Unpack

import msgspec

from ledger.checkpoint import Signer
from ledger.checkpoint_log import CheckpointRecord
from ledger.errors import InvalidInput, NotFound
from ledger.events import EntryRetracted, Method, SubaccountConfigured, TenantConfigured, Unknown
from ledger.keywords import KeywordChanges, Mode, Policy, validate_changes
from ledger.location import StoreLocation, parse_location
from ledger.msisdn import to_e164, valid_region
from ledger.store import Appended, Draft, LogStore, StoredEntry
from ledger.timefmt import format_time, normalize_time
from projections.config import SubaccountSettings
from projections.decisions import BulkStates, Decision
from projections.engine import open_engine
from projections.ids import new_key, valid_subaccount
from projections.known_at import KnownAt, parse_known_at, resolve_known_at
from projections.read_model import Decide, Maintenance, ReadModel, ReadView, UnitOfWork
from projections.review import ReviewItem
from projections.timeline import Interval


class SubaccountChanges(TypedDict, total=False):
    """Settings a subaccount change names (one left out, or ``None``, keeps its value)."""

    default_region: str | None
    mode: Mode | None
    unknown: Unknown | None
    keywords: KeywordChanges | None


MIN_RETENTION_DAYS = 1461
"""The shortest evidence retention accepted without a recorded reason: 4 years, the TCPA
limitation period (docs/adopting.md)."""


class TenantUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The tenant's settings after ``update_tenant``, and the entry it appended (if any)."""

    revoke_all: bool
    default_region: str | None
    appended: Appended | None = None
    evidence_retention_days: int | None = None
    retention_reason: str | None = None


class ConsentLedger:
    """The consent ledger on one store (SQLite or PostgreSQL: ``ledger.location``): the log
    store and its projections, read through the read model (``projections.read_model``)."""

    def __init__(
        self,
        location: str | Path | StoreLocation,
        clock: Callable[[], datetime] | None = None,
        *,
        pool_size: int | None = None,
    ) -> None:
        where = location if isinstance(location, StoreLocation) else parse_location(location)
        engine = open_engine(where, clock, pool_size=pool_size)
        self.location = where
        self.store: LogStore = engine.store
        self.clock = self.store.clock  # the store's: one clock for every "now"
        self.read_model: ReadModel = engine.read_model
        self.unit_of_work: UnitOfWork = engine.unit_of_work
        self.maintenance: Maintenance = engine.maintenance
        self._checkpoints = engine.checkpoints

    def close(self) -> None:
        """Release the database."""
        self.store.close()

    def append(self, drafts: Sequence[Draft]) -> list[Appended]:
        """Append drafts (see ``ledger.store.LogStore.append``)."""
        return self.store.append(drafts)

    def append_each(self, calls: Sequence[Sequence[Draft]]) -> list[list[Appended] | Exception]:
        """Append independent calls as one group (see ``ledger.store.LogStore.append_each``)."""
        return self.store.append_each(calls)

    def decide_and_append(self, decide: Decide) -> list[Appended]:
        """Append the drafts ``decide`` returns, calling it with a read view bound to the
        append's write transaction: what it reads is the newest state, and no other append (of
        this or another process) comes between its reads and its entries. If ``decide`` raises,
        nothing is written; no drafts, no entries (see ``projections.read_model.UnitOfWork``)."""
        return self.unit_of_work.decide_and_append(decide)

    def now(self) -> str:
        """The current time in canonical form."""
        return format_time(self.clock())

    # -- settings --------------------------------------------------------------------------
    def settings(self, tenant: str, subaccount: str) -> SubaccountSettings | None:
        """Current settings of a subaccount; ``None`` if unknown."""
        return self.read_model.settings(tenant, subaccount)

    def subaccounts(self, tenant: str) -> list[SubaccountSettings]:
        """Current settings of every known subaccount of ``tenant``."""
        return self.read_model.subaccounts(tenant)

    def policy(self, tenant: str, subaccount: str | None) -> Policy:
        """The keyword policy of a subaccount (the default policy when unknown)."""
        settings = self.settings(tenant, subaccount) if subaccount else None
        return settings.policy if settings else Policy()

    def revoke_all(self, tenant: str) -> bool:
        """Whether every opt-out of ``tenant`` applies tenant-wide."""
        return self.read_model.revoke_all(tenant)

    def tenant_region(self, tenant: str) -> str | None:
        """The tenant's default region (for numbers whose subaccount is not resolved)."""
        return self.read_model.tenant_region(tenant)

    def normalize_msisdn(self, tenant: str, subaccount: str | None, raw: str) -> str:
        """``raw`` as E.164, bare digits read in the subaccount's default region."""
        settings = self.settings(tenant, subaccount) if subaccount else None
        region = settings.default_region if settings else None
        return to_e164(raw, region or self.tenant_region(tenant))

    def configure_subaccount(
        self,
        tenant: str,
        subaccount: str,
        *,
        actor: str,
        method: Method = "admin",
        key: str | None = None,
        **changes: Unpack[SubaccountChanges],
    ) -> Appended:
        """Append new settings for ``subaccount`` (fields left out or ``None`` keep their value).

        The policy version goes up by one whenever the mode or the keyword lists change; it is
        computed from the settings in force inside the append's write transaction, so
        concurrent changes (from any process) each get a version of their own.
        """
        appended = self._configure(tenant, subaccount, actor, method, key, False, changes)
        assert appended is not None  # unconditional: always an entry
        return appended

    def update_subaccount(
        self,
        tenant: str,
        subaccount: str,
        *,
        actor: str,
        method: Method = "admin",
        **changes: Unpack[SubaccountChanges],
    ) -> Appended | None:
        """Like ``configure_subaccount``, but append nothing (``None``) when the new settings
        equal the ones in force; both decided inside the append's write transaction."""
        return self._configure(tenant, subaccount, actor, method, None, True, changes)

    def _configure(
        self,
        tenant: str,
        subaccount: str,
        actor: str,
        method: Method,
        key: str | None,
        if_changed: bool,
        changes: SubaccountChanges,
    ) -> Appended | None:
        valid_subaccount(subaccount)

        def build(view: ReadView) -> list[Draft]:
            current = view.settings(tenant, subaccount)
            draft = self.subaccount_draft(
                tenant, subaccount, current, actor=actor, method=method, key=key, **changes
            )
            return [] if if_changed and _unchanged(current, draft.event) else [draft]

        appended = self.decide_and_append(build)
        return appended[0] if appended else None

    @staticmethod
    def subaccount_draft(
        tenant: str,
        subaccount: str,
        current: SubaccountSettings | None,
        *,
        actor: str,
        method: Method,
        default_region: str | None = None,
        mode: Mode | None = None,
        unknown: Unknown | None = None,
        keywords: KeywordChanges | None = None,
        key: str | None = None,
    ) -> Draft:
        """The configuration entry that moves ``current`` settings to the given ones."""
        region = valid_region(default_region) if default_region else None
        changes = validate_changes(keywords) if keywords is not None else None
        new_mode = mode or (current.mode if current else "standard")
        new_changes = (
            changes if changes is not None else (current.keywords if current else KeywordChanges())
        )
        version = 1
        if current is not None:
            same = current.mode == new_mode and current.keywords == new_changes
            version = current.policy_version + (0 if same else 1)
        event = SubaccountConfigured(
            default_region=region or (current.default_region if current else None),
            mode=new_mode,
            unknown=unknown or (current.unknown if current else "allow"),
            keywords=new_changes,
            policy_version=version,
            actor=actor,
            method=method,
        )
        return Draft(
            tenant=tenant,
            key=key or new_key("config"),
            subaccount=subaccount,
            msisdn=None,
            occurred_at=None,
            event=event,
        )

    def configure_tenant(
        self,
        tenant: str,
        *,
        revoke_all: bool,
        actor: str,
        default_region: str | None = None,
        key: str | None = None,
    ) -> Appended:
        """Append the tenant's settings (``revoke_all``: every opt-out applies tenant-wide;
        ``default_region``: how national numbers read when no subaccount resolves)."""
        region = valid_region(default_region) if default_region else None
        event = TenantConfigured(revoke_all=revoke_all, actor=actor, default_region=region)
        draft = Draft(
            tenant=tenant,
            key=key or new_key("tenant"),
            subaccount=None,
            msisdn=None,
            occurred_at=None,
            event=event,
        )
        return self.append([draft])[0]

    def update_tenant(
        self,
        tenant: str,
        *,
        actor: str,
        revoke_all: bool | None = None,
        default_region: str | None = None,
        evidence_retention_days: int | None = None,
        below_minimum_reason: str | None = None,
    ) -> TenantUpdate:
        """The tenant's settings with the given ones changed (``None`` keeps a value); appends a
        ``tenant.configured`` only when something changes, both decided inside the append's
        write transaction (the API's ``PUT /v1/tenant`` and the CLI's ``tenant set``).

        ``evidence_retention_days``: 0 keeps evidence for ever (the default); a period under
        ``MIN_RETENTION_DAYS`` is refused (``InvalidInput``) unless ``below_minimum_reason``
        says why, and that reason is recorded with it."""
        region = valid_region(default_region) if default_region else None
        reason = _retention_reason(evidence_retention_days, below_minimum_reason)
        decided: list[TenantUpdate] = []

        def build(view: ReadView) -> list[Draft]:
            days, why = retention_of(view, tenant)
            now = (view.revoke_all(tenant), view.tenant_region(tenant), days, why)
            if evidence_retention_days is not None:
                days, why = evidence_retention_days or None, reason
            wanted = (now[0] if revoke_all is None else revoke_all, region or now[1], days, why)
            decided.append(
                TenantUpdate(
                    revoke_all=wanted[0],
                    default_region=wanted[1],
                    evidence_retention_days=wanted[2],
                    retention_reason=wanted[3],
                )
            )
            if wanted == now:
                return []
            event = TenantConfigured(
                revoke_all=wanted[0],
                actor=actor,
                default_region=wanted[1],
                evidence_retention_days=wanted[2],
                retention_reason=wanted[3],
            )
            return [
                Draft(
                    tenant=tenant,
                    key=new_key("tenant"),
                    subaccount=None,
                    msisdn=None,
                    occurred_at=None,
                    event=event,
                )
            ]

        appended = self.decide_and_append(build)
        return msgspec.structs.replace(decided[-1], appended=appended[0] if appended else None)

    def evidence_retention(self, tenant: str) -> int | None:
        """The tenant's ``evidence_retention_days`` (``None``: evidence is kept for ever)."""
        with self.read_model.snapshot() as view:
            return retention_of(view, tenant)[0]

    def retract(
        self, tenant: str, position: int, *, reason: str, actor: str, key: str | None = None
    ) -> Appended:
        """Append a retraction of ``position``: from now on that entry has no effect."""
        draft = self.retraction_draft(tenant, position, reason=reason, actor=actor, key=key)
        return self.append([draft])[0]

    @staticmethod
    def retraction_draft(
        tenant: str, position: int, *, reason: str, actor: str, key: str | None = None
    ) -> Draft:
        """The entry retracting ``position`` (``InvalidInput`` for a blank reason)."""
        if not reason.strip():
            raise InvalidInput("a retraction needs a reason")
        return Draft(
            tenant=tenant,
            key=key or new_key("retract"),
            subaccount=None,
            msisdn=None,
            occurred_at=None,
            event=EntryRetracted(position=position, reason=reason, actor=actor),
        )

    # -- decisions -------------------------------------------------------------------------
    def known_at(self, text: str | None) -> KnownAt:
        """A ``known_at`` as given (a log position or an RFC 3339 time; ``None``: now),
        checked and resolved to the log position to answer as of (see
        ``projections.known_at``: one reading for the API and the CLI)."""
        return resolve_known_at(self.read_model, parse_known_at(text), self.now())

    def decide(
        self,
        tenant: str,
        subaccount: str,
        msisdn: str,
        *,
        at: str | None = None,
        known_at: int | None = None,
    ) -> Decision:
        """May ``subaccount`` send to E.164 ``msisdn`` at ``at`` (now) as known at a position?"""
        with self.read_model.snapshot() as view:
            head = view.head()
            position = head if known_at is None else min(known_at, head)
            when = normalize_time(at) if at else view.now()
            return view.decide(tenant, subaccount, msisdn, when, position)

    def decide_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], *, at: str | None = None
    ) -> tuple[dict[str, Decision], int]:
        """Decisions for many E.164 numbers in one query, and the log position they reflect."""
        with self.read_model.snapshot() as view:
            head = view.head()
            when = normalize_time(at) if at else view.now()
            return view.decide_many(tenant, subaccount, msisdns, when, head), head

    def states_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], *, at: str | None = None
    ) -> tuple[BulkStates, int]:
        """What ``decide_many`` says of each number (allowed and state only), and the log
        position it reflects: the lean form for bulk checks of whole campaign lists."""
        with self.read_model.snapshot() as view:
            head = view.head()
            when = normalize_time(at) if at else view.now()
            return view.states_many(tenant, subaccount, msisdns, when, head), head

    def timeline(
        self, tenant: str, subaccount: str, msisdn: str, known_at: int | None = None
    ) -> list[Interval]:
        """Consent intervals of (subaccount, msisdn) as known at ``known_at`` (now)."""
        with self.read_model.snapshot() as view:
            position = view.head() if known_at is None else known_at
            return view.intervals(tenant, subaccount, msisdn, position)

    def history(self, tenant: str, msisdn: str) -> list[StoredEntry]:
        """Every entry of ``tenant`` about ``msisdn``, oldest first."""
        return self.store.read_number(tenant, msisdn)

    def review_queue(
        self,
        tenant: str,
        *,
        after: int = 0,
        limit: int = 1000,
        kind: str | None = None,
        subaccount: str | None = None,
        recorded_before: str | None = None,
    ) -> list[ReviewItem]:
        """Up to ``limit`` open review items after position ``after``, oldest first; only
        those of ``kind``, naming ``subaccount``, recorded before ``recorded_before`` (each
        filter when given)."""
        return self.read_model.open_review_items(
            tenant,
            after=after,
            limit=limit,
            kind=kind,
            subaccount=subaccount,
            recorded_before=recorded_before,
        )

    def review_item(self, tenant: str, position: int) -> ReviewItem:
        """One review item (``NotFound`` if absent or another tenant's)."""
        item = self.read_model.review_item(tenant, position)
        if item is None:
            raise NotFound(f"there is no review item at position {position}")
        return item

    def head(self) -> int:
        """The newest log position."""
        return self.store.head()

    # -- tamper evidence -------------------------------------------------------------------
    def sign_checkpoint(
        self, signer: Signer, origin: str, *, min_interval: float | None = None
    ) -> CheckpointRecord | None:
        """Sign a checkpoint of the whole log if it grew (see ``ledger.checkpoint_log.sign``).

        Returns the checkpoint covering the newest entry, or ``None`` when ``min_interval``
        seconds have not passed since the last one. When the latest checkpoint already covers
        the newest entry it is returned without a write transaction: answering it never waits
        for, nor holds up, writers.
        """
        record, _ = self._checkpoints.sign(signer, origin, self.clock(), min_interval=min_interval)
        return record

    def sign_checkpoint_now(self, signer: Signer, origin: str) -> tuple[CheckpointRecord, bool]:
        """A checkpoint covering the newest entry, and whether it was signed now (the log
        grew since the latest; checked to be consistent with it) rather than the latest one."""
        record, created = self._checkpoints.sign(signer, origin, self.clock())
        assert record is not None  # no min_interval: always a checkpoint covering the newest
        return record, created

    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The newest signed checkpoint."""
        return self.read_model.latest_checkpoint()


def open_ledger(
    location: str | Path | StoreLocation,
    clock: Callable[[], datetime] | None = None,
    *,
    pool_size: int | None = None,
) -> ConsentLedger:
    """Open the ledger at ``location`` (a ``--db`` value: a path, ``sqlite:///PATH`` or a
    ``postgresql://`` URL, read by ``ledger.location.parse_location``).

    The server, its bootstrap key and every command open their store here, so each gets the
    same settings: a missing SQLite database is created privately (directory 0700, file 0600),
    every pending migration is applied before this returns (on PostgreSQL under a lock, so
    nodes starting together never race), and the store's durability settings apply to every
    connection. The caller closes the ledger. (``verify`` alone reads a store without opening
    it here: it must never create, migrate or write one.)
    """
    return ConsentLedger(location, clock, pool_size=pool_size)


def retention_of(view: ReadView, tenant: str) -> tuple[int | None, str | None]:
    """(``evidence_retention_days``, the reason recorded for a period under the minimum) of
    ``tenant`` now: from its latest ``tenant.configured`` entry (a full snapshot of its
    settings; no subaccount is named ``""``, so only the tenant's entries are read)."""
    entries = view.configuration_entries(tenant, "")
    for stored in reversed(entries):
        event = stored.entry.event
        if isinstance(event, TenantConfigured):
            return event.evidence_retention_days, event.retention_reason
    return None, None


def _retention_reason(days: int | None, reason: str | None) -> str | None:
    """The reason to record with a retention period (refusing a short one without one)."""
    if days is None:
        if reason is not None:
            raise InvalidInput("a reason goes with a retention period under the minimum")
        return None
    if days < 0:
        raise InvalidInput("the evidence retention is a number of days (0: keep for ever)")
    if days == 0 or days >= MIN_RETENTION_DAYS:
        if reason is not None:
            raise InvalidInput(
                f"{days} days is not under the minimum of {MIN_RETENTION_DAYS}: no reason needed"
            )
        return None
    if reason is None or not reason.strip():
        raise InvalidInput(
            f"an evidence retention under {MIN_RETENTION_DAYS} days (4 years, the TCPA "
            "limitation period) is refused unless a reason is given (below minimum)"
        )
    if len(reason) > 500:
        raise InvalidInput("the reason is longer than 500 characters")
    return reason.strip()


def _unchanged(current: SubaccountSettings | None, event: object) -> bool:
    """Whether configuration ``event`` would leave ``current`` settings as they are."""
    return (
        current is not None
        and isinstance(event, SubaccountConfigured)
        and (
            current.default_region,
            current.mode,
            current.unknown,
            current.keywords,
            current.policy_version,
        )
        == (event.default_region, event.mode, event.unknown, event.keywords, event.policy_version)
    )
