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

import msgspec

from ledger.store import StoredEntry
from projections.decisions import Decision
from projections.fold import bears_on
from projections.ledger import ConsentLedger
from projections.read_model import Evidence
from projections.timeline import Interval

__all__ = ["Evidence", "Trail", "entries_at", "evidence_of", "trail"]


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
    with ledger.read_model.snapshot() as view:
        head = view.head()
        own = [s for s in view.number_entries(tenant, msisdn) if bears_on(s.entry, subaccount)]
        found = {s.position: s for s in own}
        for stored in view.targeting_entries(tenant, list(found)):
            found.setdefault(stored.position, stored)
        entries = [found[p] for p in sorted(found)]
        return Trail(
            entries=entries,
            configuration=view.configuration_entries(tenant, subaccount),
            evidence=view.evidence([s.position for s in entries]),
            intervals=view.intervals(tenant, subaccount, msisdn, head),
            decision=view.decide(tenant, subaccount, msisdn, now, head),
            head=head,
        )


def entries_at(ledger: ConsentLedger, tenant: str, positions: list[int]) -> list[StoredEntry]:
    """The entries of ``tenant`` at ``positions`` (others' and missing ones left out), in order."""
    return [s for s in ledger.read_model.entries_at(positions) if s.entry.tenant == tenant]


def evidence_of(ledger: ConsentLedger, positions: list[int]) -> Evidence:
    """The evidence rows of ``positions`` (see ``Evidence``)."""
    return ledger.read_model.evidence(positions)
