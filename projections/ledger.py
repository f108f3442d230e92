"""``ConsentLedger``: the log store wired to its projections, and the reads built on them.

Guarantees: every write goes through the store's append (atomic, durable, projections updated in
the same transaction); every read that combines several queries runs in one read snapshot, so an
answer reflects exactly the log position it reports.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from ledger.checkpoint import Signer
from ledger.checkpoint_log import CheckpointRecord
from ledger.errors import InvalidInput, NotFound
from ledger.events import EntryRetracted, Method, SubaccountConfigured, TenantConfigured, Unknown
from ledger.keywords import KeywordChanges, Mode, Policy, validate_changes
from ledger.msisdn import to_e164, valid_region
from ledger.sqlite import checkpoints as checkpoint_log
from ledger.sqlite import tree
from ledger.sqlite.store import SqliteLogStore, head_of
from ledger.store import Appended, Draft, StoredEntry
from ledger.timefmt import format_time, normalize_time, utc_now
from projections import config, decisions, review
from projections.config import ConfigProjector, SubaccountSettings
from projections.consent import ConsentProjector
from projections.decisions import Decision
from projections.ids import new_key, valid_subaccount
from projections.known_at import KnownAt, parse_known_at, resolve_known_at
from projections.review import ReviewProjector
from projections.timeline import Interval, intervals


def projectors() -> list[ConsentProjector | ConfigProjector | ReviewProjector]:
    """Every projection kept in step with the log, in the order they apply."""
    return [ConsentProjector(), ConfigProjector(), ReviewProjector()]


class ConsentLedger:
    """The consent ledger on one SQLite database."""

    def __init__(self, path: str | Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self.store = SqliteLogStore(path, projectors(), clock)

    def close(self) -> None:
        """Release the database."""
        self.store.close()

    def append(self, drafts: Sequence[Draft]) -> list[Appended]:
        """Append drafts (see ``ledger.store.LogStore.append``)."""
        return self.store.append(drafts)

    def append_each(self, calls: Sequence[Sequence[Draft]]) -> list[list[Appended] | Exception]:
        """Append independent calls as one group (see ``ledger.store.LogStore.append_each``)."""
        return self.store.append_each(calls)

    def now(self) -> str:
        """The current time in canonical form."""
        return format_time(self.clock())

    # -- settings --------------------------------------------------------------------------
    def settings(self, tenant: str, subaccount: str) -> SubaccountSettings | None:
        """Current settings of a subaccount; ``None`` if unknown."""
        return config.subaccount_settings(self.store.reader(), tenant, subaccount)

    def subaccounts(self, tenant: str) -> list[SubaccountSettings]:
        """Current settings of every known subaccount of ``tenant``."""
        return config.list_subaccounts(self.store.reader(), tenant)

    def policy(self, tenant: str, subaccount: str | None) -> Policy:
        """The keyword policy of a subaccount (the default policy when unknown)."""
        settings = self.settings(tenant, subaccount) if subaccount else None
        return settings.policy if settings else Policy()

    def revoke_all(self, tenant: str) -> bool:
        """Whether every opt-out of ``tenant`` applies tenant-wide."""
        return config.revoke_all(self.store.reader(), tenant)

    def tenant_region(self, tenant: str) -> str | None:
        """The tenant's default region (for numbers whose subaccount is not resolved)."""
        return config.tenant_region(self.store.reader(), tenant)

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
        default_region: str | None = None,
        mode: Mode | None = None,
        unknown: Unknown | None = None,
        keywords: KeywordChanges | None = None,
        key: str | None = None,
    ) -> Appended:
        """Append new settings for ``subaccount`` (fields left ``None`` keep their value).

        The policy version goes up by one whenever the mode or the keyword lists change; it is
        computed from the settings in force inside the append's write transaction, so
        concurrent changes (from any process) each get a version of their own.
        """
        appended = self._configure(
            tenant,
            subaccount,
            actor=actor,
            method=method,
            default_region=default_region,
            mode=mode,
            unknown=unknown,
            keywords=keywords,
            key=key,
            if_changed=False,
        )
        assert appended is not None  # unconditional: always an entry
        return appended

    def update_subaccount(
        self,
        tenant: str,
        subaccount: str,
        *,
        actor: str,
        method: Method = "admin",
        default_region: str | None = None,
        mode: Mode | None = None,
        unknown: Unknown | None = None,
        keywords: KeywordChanges | None = None,
    ) -> Appended | None:
        """Like ``configure_subaccount``, but append nothing (``None``) when the new settings
        equal the ones in force; both decided inside the append's write transaction."""
        return self._configure(
            tenant,
            subaccount,
            actor=actor,
            method=method,
            default_region=default_region,
            mode=mode,
            unknown=unknown,
            keywords=keywords,
            key=None,
            if_changed=True,
        )

    def _configure(
        self,
        tenant: str,
        subaccount: str,
        *,
        actor: str,
        method: Method,
        default_region: str | None,
        mode: Mode | None,
        unknown: Unknown | None,
        keywords: KeywordChanges | None,
        key: str | None,
        if_changed: bool,
    ) -> Appended | None:
        valid_subaccount(subaccount)

        def build(conn: sqlite3.Connection) -> list[Draft]:
            current = config.subaccount_settings(conn, tenant, subaccount)
            draft = self.subaccount_draft(
                tenant,
                subaccount,
                current,
                actor=actor,
                method=method,
                default_region=default_region,
                mode=mode,
                unknown=unknown,
                keywords=keywords,
                key=key,
            )
            return [] if if_changed and _unchanged(current, draft.event) else [draft]

        appended = self.store.append_built(build)
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
        return resolve_known_at(self.store.reader(), parse_known_at(text), self.now())

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
        with self.store.snapshot() as conn:
            head = head_of(conn)
            position = head if known_at is None else min(known_at, head)
            when = normalize_time(at) if at else self.now()
            return decisions.decide(conn, tenant, subaccount, msisdn, when, position)

    def decide_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], *, at: str | None = None
    ) -> tuple[dict[str, Decision], int]:
        """Decisions for many E.164 numbers in one query, and the log position they reflect."""
        with self.store.snapshot() as conn:
            head = head_of(conn)
            when = normalize_time(at) if at else self.now()
            found = decisions.decide_many(conn, tenant, subaccount, msisdns, when, head)
            return found, head

    def states_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], *, at: str | None = None
    ) -> tuple[decisions.BulkStates, int]:
        """What ``decide_many`` says of each number (allowed and state only), and the log
        position it reflects: the lean form for bulk checks of whole campaign lists."""
        with self.store.snapshot() as conn:
            head = head_of(conn)
            when = normalize_time(at) if at else self.now()
            found = decisions.states_many(conn, tenant, subaccount, msisdns, when, head)
            return found, head

    def timeline(
        self, tenant: str, subaccount: str, msisdn: str, known_at: int | None = None
    ) -> list[Interval]:
        """Consent intervals of (subaccount, msisdn) as known at ``known_at`` (now)."""
        with self.store.snapshot() as conn:
            head = head_of(conn)
            return intervals(
                conn, tenant, subaccount, msisdn, head if known_at is None else known_at
            )

    def history(self, tenant: str, msisdn: str) -> list[StoredEntry]:
        """Every entry of ``tenant`` about ``msisdn``, oldest first."""
        return self.store.read_number(tenant, msisdn)

    def review_queue(
        self, tenant: str, *, after: int = 0, limit: int = 1000
    ) -> list[review.ReviewItem]:
        """Up to ``limit`` open review items after position ``after``, oldest first."""
        return review.open_items(self.store.reader(), tenant, after=after, limit=limit)

    def review_item(self, tenant: str, position: int) -> review.ReviewItem:
        """One review item (``NotFound`` if absent or another tenant's)."""
        item = review.review_item(self.store.reader(), tenant, position)
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
        with self.store.snapshot() as conn:
            latest = checkpoint_log.latest(conn)
            if latest is not None and latest.size >= tree.tree_size(conn):
                return latest
        with self.store.write_transaction() as conn:
            return checkpoint_log.sign(
                conn, signer, origin, self.clock(), min_interval=min_interval
            )

    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The newest signed checkpoint."""
        return checkpoint_log.latest(self.store.reader())


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
