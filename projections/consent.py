"""The consent projection: bitemporal consent facts per (tenant, scope, msisdn).

A fact is one opt-out or opt-in entry: valid from its ``occurred_at``, known from its position
until the position of the retraction that removed it (if any). Scope ``''`` is tenant-wide.
``consent_current`` keeps, per (tenant, msisdn, scope), the fact that is latest (by occurred time,
ties by position) among those not retracted. Guarantee: both tables are pure functions of the
log — applying entries live and replaying the log into empty tables give the same rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ledger.events import ConsentGranted, ConsentRevoked, EntryRetracted
from ledger.store import Committed
from projections.positions import set_position

TENANT_SCOPE = ""
"""The scope key of a tenant-wide fact (the SQL projection's and the reference fold's)."""


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
