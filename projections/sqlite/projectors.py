"""The SQLite projectors: consent facts, configuration versions and the review queue, kept in
step with the log inside the append transaction (``ledger.store.Projector`` on a
``sqlite3.Connection``).

Guarantees: each projector records the last position it applied (``projection_positions``) in
the same transaction as its rows, so it is never ahead of or behind the log; its tables are pure
functions of the log (applied live or replayed, the rows are the same); the rules are those of
``projections.fold`` (the property tests hold them equal). See ``projections.consent``,
``projections.config`` and ``projections.review`` for what each projection means.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from ledger.errors import NotFound
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    EntryRetracted,
    ReplyFailed,
    ReplySent,
    ReviewResolved,
    SubaccountConfigured,
    TenantConfigured,
)
from ledger.store import Committed, Projector
from projections.config import PolicyConflict, PolicyVersionClash
from projections.consent import TENANT_SCOPE
from projections.review import opens
from projections.sqlite.outbox import OutboxProjector

SqliteProjector = Projector[sqlite3.Connection]


def projectors(
    *, strict: bool = True
) -> list[ConsentProjector | ConfigProjector | ReviewProjector | OutboxProjector]:
    """Every projection kept in step with the log, in the order they apply. ``strict``: refuse
    a new entry that breaks an invariant (live appends); a replay of what is stored reports
    instead (rebuild, verify)."""
    return [
        ConsentProjector(),
        ConfigProjector(strict=strict),
        ReviewProjector(),
        OutboxProjector(),
    ]


def set_position(conn: sqlite3.Connection, name: str, position: int) -> None:
    """Record that projection ``name`` has applied the log up to ``position`` (same transaction)."""
    conn.execute(
        "INSERT INTO projection_positions (name, position) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (name, position),
    )


# -- consent ---------------------------------------------------------------------------------
class ConsentProjector:
    """Keeps ``consent_facts`` and ``consent_current`` in step with the log."""

    name = "consent"

    def apply(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """Insert a fact per consent entry and close facts that a retraction removes; keep
        ``consent_current`` in step."""
        _apply(conn, items, current=True)
        set_position(conn, self.name, items[-1].stored.position)

    def replay(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """What ``apply`` does to ``consent_facts``, during a replay into empty tables; leaves
        ``consent_current`` to ``finish_replay``."""
        _apply(conn, items, current=False)
        set_position(conn, self.name, items[-1].stored.position)

    def finish_replay(self, conn: sqlite3.Connection) -> None:
        """Fill the empty ``consent_current`` from ``consent_facts`` in one pass over its index:
        per key the latest fact not retracted, the very rows ``apply`` keeps one by one."""
        conn.execute(_DERIVE_CURRENT)

    def reset(self, conn: sqlite3.Connection) -> None:
        """Drop every fact."""
        conn.execute("DELETE FROM consent_facts")
        conn.execute("DELETE FROM consent_current")
        set_position(conn, self.name, 0)


def _apply(conn: sqlite3.Connection, items: Sequence[Committed], *, current: bool) -> None:
    """Facts of ``items`` in position order, a retraction applied where it falls among them."""
    facts: list[tuple[object, ...]] = []
    for item in items:
        entry, event = item.entry, item.entry.event
        if isinstance(event, ConsentRevoked | ConsentGranted) and entry.msisdn:
            scope = TENANT_SCOPE if event.scope == "tenant" else entry.subaccount
            state = "opted_out" if isinstance(event, ConsentRevoked) else "opted_in"
            facts.append(
                (
                    entry.position,
                    entry.tenant,
                    scope or TENANT_SCOPE,
                    entry.msisdn,
                    state,
                    entry.occurred_at,
                    entry.event_id,
                    entry.type,
                    event.keyword,
                )
            )
        elif isinstance(event, EntryRetracted):
            if facts:
                _insert(conn, facts, current)
                facts = []
            _retract(conn, event.position, entry.position, current)
    if facts:
        _insert(conn, facts, current)


def _insert(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]], current: bool) -> None:
    conn.executemany(
        "INSERT INTO consent_facts (position, tenant, scope, msisdn, state, occurred_at, "
        "event_id, type, keyword) VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
    if current:
        conn.executemany(_NEWER, [r[:6] for r in rows])


# A fact becomes the current one of its (tenant, msisdn, scope) unless that has a later one.
_NEWER = (
    "INSERT INTO consent_current (position, tenant, scope, msisdn, state, occurred_at) "
    "VALUES (?,?,?,?,?,?) ON CONFLICT (tenant, msisdn, scope) DO UPDATE SET "
    "position = excluded.position, state = excluded.state, occurred_at = excluded.occurred_at "
    "WHERE (excluded.occurred_at, excluded.position) > "
    "(consent_current.occurred_at, consent_current.position)"
)


def _retract(conn: sqlite3.Connection, target: int, by: int, current: bool) -> None:
    """Mark the fact at ``target`` retracted and (with ``current``), if it was current, put the
    latest fact left for its (tenant, msisdn, scope) in its place (or none)."""
    row = conn.execute(
        "UPDATE consent_facts SET retracted_by = ? WHERE position = ? AND retracted_by IS NULL "
        "RETURNING tenant, msisdn, scope",
        (by, target),
    ).fetchall()
    if not row or not current:
        return
    gone = conn.execute(
        "DELETE FROM consent_current WHERE tenant = ? AND msisdn = ? AND scope = ? "
        "AND position = ?",
        (*row[0], target),
    )
    if gone.rowcount:
        conn.execute(
            "INSERT INTO consent_current (position, tenant, msisdn, scope, occurred_at, state) "
            "SELECT position, tenant, msisdn, scope, occurred_at, state FROM consent_facts "
            "WHERE tenant = ? AND msisdn = ? AND scope = ? AND retracted_by IS NULL "
            "ORDER BY occurred_at DESC, position DESC LIMIT 1",
            row[0],
        )


# Per (tenant, msisdn, scope), the fact not retracted with no later one (by occurred time, ties by
# position): the same rows as migration 0005's. A scan of the covering index consent_facts_lookup
# (migration 0007) in key order, so consent_current fills from its right edge.
_DERIVE_CURRENT = (
    "INSERT INTO consent_current (position, tenant, msisdn, scope, occurred_at, state) "
    "SELECT position, tenant, msisdn, scope, occurred_at, state FROM ("
    " SELECT position, tenant, msisdn, scope, occurred_at, state, lead(position) OVER ("
    "  PARTITION BY tenant, msisdn, scope ORDER BY occurred_at, position) AS later"
    " FROM consent_facts WHERE retracted_by IS NULL"
    ") WHERE later IS NULL"
)


# -- configuration ---------------------------------------------------------------------------
_KEYWORDS_JSON = msgspec.json.Encoder(order="deterministic")
"""Keyword changes as the log stores them (keys sorted), so a live row equals a replayed one."""


class ConfigProjector:
    """Keeps ``subaccount_versions`` and ``tenant_versions`` in step with the log.

    Invariant (docs/consent-rules.md §3): one (mode, keyword lists) per policy version of a
    subaccount — a version repeats only when the region or ``unknown`` changes. A strict
    projector refuses a new entry that breaks it (``PolicyVersionClash``, nothing written); a
    replay records what is stored, and ``policy_version_conflicts`` reports older breaks.
    """

    name = "config"

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict

    def replay(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """Apply stored entries as they are (a rebuild never refuses what the log holds)."""
        self._apply(conn, items, strict=False)

    def finish_replay(self, conn: sqlite3.Connection) -> None:
        """Nothing is left for later in a replay."""

    def apply(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """Record each configuration entry as a new version (see the invariant)."""
        self._apply(conn, items, strict=self.strict)

    def _apply(self, conn: sqlite3.Connection, items: Sequence[Committed], *, strict: bool) -> None:
        for item in items:
            entry, event = item.entry, item.entry.event
            if isinstance(event, SubaccountConfigured):
                keywords = _KEYWORDS_JSON.encode(event.keywords).decode()
                if strict:
                    _check_policy_version(conn, entry.tenant, entry.subaccount, event, keywords)
                conn.execute(
                    "INSERT INTO subaccount_versions (position, tenant, subaccount, occurred_at, "
                    "default_region, mode, unknown, keywords, policy_version) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        entry.position,
                        entry.tenant,
                        entry.subaccount,
                        entry.occurred_at,
                        event.default_region,
                        event.mode,
                        event.unknown,
                        keywords,
                        event.policy_version,
                    ),
                )
            elif isinstance(event, TenantConfigured):
                conn.execute(
                    "INSERT INTO tenant_versions (position, tenant, occurred_at, revoke_all, "
                    "default_region) VALUES (?,?,?,?,?)",
                    (
                        entry.position,
                        entry.tenant,
                        entry.occurred_at,
                        int(event.revoke_all),
                        event.default_region,
                    ),
                )
        set_position(conn, self.name, items[-1].stored.position)

    def reset(self, conn: sqlite3.Connection) -> None:
        """Drop every version."""
        conn.execute("DELETE FROM subaccount_versions")
        conn.execute("DELETE FROM tenant_versions")
        set_position(conn, self.name, 0)


# -- review queue ----------------------------------------------------------------------------
class ReviewProjector:
    """Keeps ``review_items`` in step with the log."""

    name = "review"

    def apply(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """Open items for flags and unresolved opt-outs; close them on resolution/retraction."""
        for item in items:
            entry, event = item.entry, item.entry.event
            opened = opens(event, entry.subaccount)
            if opened is not None:
                kind, subaccount, keyword = opened
                conn.execute(
                    "INSERT INTO review_items (position, tenant, kind, subaccount, msisdn, "
                    "keyword, occurred_at, recorded_at) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        entry.position,
                        entry.tenant,
                        kind,
                        subaccount,
                        entry.msisdn,
                        keyword,
                        entry.occurred_at,
                        entry.recorded_at,
                    ),
                )
            elif isinstance(event, ReviewResolved):
                _close(conn, entry.tenant, event.position, entry.position, event.action)
            elif isinstance(event, ReplySent | ReplyFailed) and event.settles is not None:
                conn.execute(
                    "UPDATE review_items SET closed_by = ?, closed_how = 'settled' "
                    "WHERE position = ? AND closed_by IS NULL",
                    (entry.position, event.settles),
                )
            elif isinstance(event, EntryRetracted):
                conn.execute(
                    "UPDATE review_items SET closed_by = ?, closed_how = 'retracted' "
                    "WHERE position = ? AND closed_by IS NULL",
                    (entry.position, event.position),
                )
        set_position(conn, self.name, items[-1].stored.position)

    def reset(self, conn: sqlite3.Connection) -> None:
        """Drop every item."""
        conn.execute("DELETE FROM review_items")
        set_position(conn, self.name, 0)


def _close(conn: sqlite3.Connection, tenant: str, target: int, by: int, how: str) -> None:
    cur = conn.execute(
        "UPDATE review_items SET closed_by = ?, closed_how = ? "
        "WHERE position = ? AND tenant = ? AND closed_by IS NULL",
        (by, how, target, tenant),
    )
    if cur.rowcount == 0:
        raise NotFound(f"there is no open review item at position {target}")


def _check_policy_version(
    conn: sqlite3.Connection,
    tenant: str,
    subaccount: str | None,
    event: SubaccountConfigured,
    keywords: str,
) -> None:
    """Raise ``PolicyVersionClash`` when this policy version already names another policy."""
    row = conn.execute(
        "SELECT position FROM subaccount_versions WHERE tenant = ? AND subaccount = ? "
        "AND policy_version = ? AND (mode != ? OR keywords != ?) LIMIT 1",
        (tenant, subaccount, event.policy_version, event.mode, keywords),
    ).fetchone()
    if row is not None:
        raise PolicyVersionClash(
            f"policy version {event.policy_version} of subaccount {subaccount!r} already names "
            f"another policy (position {row[0]}); nothing was written"
        )


def policy_version_conflicts(conn: sqlite3.Connection) -> list[PolicyConflict]:
    """Every (tenant, subaccount, policy version) that names more than one policy."""
    rows = conn.execute(
        "SELECT tenant, subaccount, policy_version, group_concat(position) FROM ("
        " SELECT tenant, subaccount, policy_version, position, mode, keywords,"
        " count(*) OVER (PARTITION BY tenant, subaccount, policy_version, mode, keywords) AS n,"
        " count(*) OVER (PARTITION BY tenant, subaccount, policy_version) AS m"
        " FROM subaccount_versions) WHERE n < m "
        "GROUP BY tenant, subaccount, policy_version ORDER BY tenant, subaccount, policy_version"
    ).fetchall()
    return [
        PolicyConflict(
            tenant=t,
            subaccount=s,
            policy_version=v,
            positions=sorted(int(x) for x in str(p).split(",")),
        )
        for t, s, v, p in rows
    ]
