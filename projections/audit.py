"""The audit trail of one number for one subaccount, read in one snapshot of the log.

Guarantees: ``trail`` reflects exactly one log position (``Trail.head``). Its ``entries`` are,
oldest first, every entry of the tenant about the number that bears on the subaccount — the
subaccount's own entries, tenant-wide opt-outs (whatever subaccount received them), entries
whose subaccount was never resolved — plus every retraction or review resolution targeting one
of those. ``configuration`` holds the subaccount's and the tenant's configuration entries (they
decide the keyword policy, the ``unknown`` rule and ``revoke_all``). Evidence is returned for the
entries that have it; erased evidence comes back as ``(None, None)``.
"""

from __future__ import annotations

import sqlite3

import msgspec

from ledger.sqlite.store import RARE_TYPES, head_of
from ledger.store import StoredEntry
from projections.decisions import Decision, decide
from projections.fold import bears_on
from projections.ledger import ConsentLedger
from projections.timeline import Interval, intervals

Evidence = dict[int, tuple[bytes | None, bytes | None]]
"""(salt, content) per position that has an evidence row; both ``None`` once erased."""

_TARGETING = ("entry.retracted", "review.resolved")


class Trail(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the ledger holds about (tenant, subaccount, msisdn) as of ``head``."""

    entries: list[StoredEntry]
    configuration: list[StoredEntry]
    evidence: Evidence
    intervals: list[Interval]
    decision: Decision
    head: int


def trail(ledger: ConsentLedger, tenant: str, subaccount: str, msisdn: str) -> Trail:
    """The audit trail of E.164 ``msisdn`` for ``subaccount`` of ``tenant``, decided now."""
    now = ledger.now()
    with ledger.store.snapshot() as conn:
        head = head_of(conn)
        own = [s for s in _number_entries(conn, tenant, msisdn) if bears_on(s.entry, subaccount)]
        found = {s.position: s for s in own}
        for stored in _targeting(conn, tenant, list(found)):
            found.setdefault(stored.position, stored)
        entries = [found[p] for p in sorted(found)]
        return Trail(
            entries=entries,
            configuration=_configuration(conn, tenant, subaccount),
            evidence=_evidence(conn, [s.position for s in entries]),
            intervals=intervals(conn, tenant, subaccount, msisdn, head),
            decision=decide(conn, tenant, subaccount, msisdn, now, head),
            head=head,
        )


def entries_at(ledger: ConsentLedger, tenant: str, positions: list[int]) -> list[StoredEntry]:
    """The entries of ``tenant`` at ``positions`` (others' and missing ones left out), in order."""
    return [s for s in ledger.store.read_positions(positions) if s.entry.tenant == tenant]


def evidence_of(ledger: ConsentLedger, positions: list[int]) -> Evidence:
    """The evidence rows of ``positions`` (see ``Evidence``)."""
    return _evidence(ledger.store.reader(), positions)


def _stored(rows: list[tuple[int, bytes, bytes]]) -> list[StoredEntry]:
    return [StoredEntry(p, d, h) for p, d, h in rows]


def _number_entries(conn: sqlite3.Connection, tenant: str, msisdn: str) -> list[StoredEntry]:
    return _stored(
        conn.execute(
            "SELECT position, entry, leaf_hash FROM log WHERE tenant = ? AND msisdn = ? "
            "ORDER BY position",
            (tenant, msisdn),
        ).fetchall()
    )


def _targeting(conn: sqlite3.Connection, tenant: str, positions: list[int]) -> list[StoredEntry]:
    if not positions:
        return []
    return _stored(
        conn.execute(
            # +tenant: search by type (rare entries), never every entry of the tenant
            f"SELECT position, entry, leaf_hash FROM log WHERE type IN (?, ?) AND {RARE_TYPES} "  # noqa: S608
            "AND +tenant = ? "
            "AND json_extract(CAST(entry AS TEXT), '$.event.position') IN "
            "(SELECT value FROM json_each(?)) ORDER BY position",
            (*_TARGETING, tenant, msgspec.json.encode(positions).decode()),
        ).fetchall()
    )


def _configuration(conn: sqlite3.Connection, tenant: str, subaccount: str) -> list[StoredEntry]:
    return _stored(
        conn.execute(
            # two searches by type (rare entries), never a pass over every entry of the tenant
            "SELECT position, entry, leaf_hash FROM log WHERE type = 'subaccount.configured' "  # noqa: S608
            f"AND {RARE_TYPES} AND tenant = ? AND subaccount = ? UNION ALL "
            "SELECT position, entry, leaf_hash FROM log WHERE type = 'tenant.configured' "
            f"AND {RARE_TYPES} AND tenant = ? ORDER BY position",
            (tenant, subaccount, tenant),
        ).fetchall()
    )


def _evidence(conn: sqlite3.Connection, positions: list[int]) -> Evidence:
    if not positions:
        return {}
    rows = conn.execute(
        "SELECT position, salt, content FROM evidence WHERE position IN "
        "(SELECT value FROM json_each(?))",
        (msgspec.json.encode(positions).decode(),),
    )
    return {p: (s, c) for p, s, c in rows}
