"""The consent projection: bitemporal consent facts per (tenant, scope, msisdn).

A fact is one opt-out or opt-in entry: valid from its ``occurred_at``, known from its position
until the position of the retraction that removed it (if any). Scope ``''`` is tenant-wide.
Guarantee: the table is a pure function of the log — applying entries live and replaying the
log into an empty table give the same rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ledger.events import ConsentGranted, ConsentRevoked, EntryRetracted
from ledger.sqlite_store import Committed
from projections.positions import set_position

TENANT_SCOPE = ""


class ConsentProjector:
    """Keeps ``consent_facts`` in step with the log."""

    name = "consent"

    def apply(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """Insert a fact per consent entry and close facts that a retraction removes."""
        facts = []
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
                    _insert(conn, facts)
                    facts = []
                conn.execute(
                    "UPDATE consent_facts SET retracted_by = ? "
                    "WHERE position = ? AND retracted_by IS NULL",
                    (entry.position, event.position),
                )
        if facts:
            _insert(conn, facts)
        set_position(conn, self.name, items[-1].stored.position)

    def reset(self, conn: sqlite3.Connection) -> None:
        """Drop every fact."""
        conn.execute("DELETE FROM consent_facts")
        set_position(conn, self.name, 0)


def _insert(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO consent_facts (position, tenant, scope, msisdn, state, occurred_at, "
        "event_id, type, keyword) VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
