"""Erasing evidence: by entry, or every evidence record of a number (docs/adopting.md).

Guarantees:
- an erasure removes the salted evidence (and, by number, the quarantined bodies that hold the
  number) and appends a tombstone, an ``evidence.erased`` entry naming when (its recorded time),
  why and by whom, in one atomic unit; the tombstone names the number, so it is part of the
  number's audit trail and evidence bundles;
- nothing about consent changes: the entries, their hashes, every proof and checkpoint, and
  every decision stay exactly as they were (a suppressed number stays suppressed);
- the erased bytes are then scrubbed from the store's files (``LogStore.scrub``); when readers
  keep that from completing, the answer says so and a later scrub (or the next erasure)
  finishes it;
- the reason is kept in the immutable log: a ticket reference, never personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

from ledger.entries import Entry
from ledger.errors import InvalidInput, NotFound, StoreUnavailable
from ledger.events import EvidenceErased
from ledger.msisdn import number_parts
from ledger.store import Draft
from projections.ids import new_key
from projections.ledger import ConsentLedger

RETENTION_NOTE = "evidence erased: superseded for longer than the tenant's retention period"
"""What an audit trail says of erased evidence that no tombstone of the trail names (a
retention run names no entries: its tombstone holds the period and cut-off)."""
MAX_REASON = 200
"""Longest erasure reason, in characters (a ticket reference)."""
QUARANTINE_PAGE = 500


class Erasure(msgspec.Struct, frozen=True, kw_only=True):
    """What an erasure did."""

    tombstone: int
    """The position of the ``evidence.erased`` entry."""
    positions: list[int]
    """The entries whose evidence was erased."""
    quarantined: int
    """Quarantined bodies erased."""
    scrubbed: bool
    """Whether the erased bytes are already gone from the store's files."""


def erase_position(
    ledger: ConsentLedger, tenant: str, position: int, *, reason: str, actor: str
) -> Erasure:
    """Erase the evidence of the entry at ``position`` of ``tenant`` (``NotFound`` when it has
    none left, or is another tenant's)."""
    reason = _reason(reason)
    found = [s for s in ledger.read_model.entries_at([position]) if s.entry.tenant == tenant]
    if not found or position not in _unerased(ledger, [position]):
        raise NotFound(f"there is no evidence to erase at position {position}")
    return _erase(ledger, tenant, found[0].entry.msisdn, [position], [], reason, actor)


def erase_number(
    ledger: ConsentLedger, tenant: str, msisdn: str, *, reason: str, actor: str
) -> Erasure:
    """Erase every evidence record of E.164 ``msisdn`` in ``tenant``: the evidence of each of
    its entries and each quarantined body that holds the number (``NotFound`` when there is
    nothing left to erase)."""
    reason = _reason(reason)
    entries = ledger.read_model.number_entries(tenant, msisdn)
    positions = sorted(_unerased(ledger, [s.position for s in entries]))
    bodies = list(_quarantined_with(ledger, tenant, msisdn))
    if not positions and not bodies:
        raise NotFound("there is no evidence of this number left to erase")
    return _erase(ledger, tenant, msisdn, positions, bodies, reason, actor)


def erasure_notes(entries: Iterable[Entry]) -> dict[int, str]:
    """ "evidence erased on D: R" for each position a tombstone among ``entries`` names (the
    latest tombstone wins)."""
    notes: dict[int, str] = {}
    for entry in entries:
        event = entry.event
        if isinstance(event, EvidenceErased):
            for position in event.positions:
                notes[position] = f"evidence erased on {entry.recorded_at[:10]}: {event.reason}"
    return notes


def erasure_detail(event: EvidenceErased) -> str:
    """What a tombstone says, in one line (audit trails)."""
    if event.retention_days is not None:
        return (
            f"retention ({event.retention_days} days): evidence of entries superseded before "
            f"{event.superseded_before} erased: {event.reason}"
        )
    where = ", ".join(str(p) for p in event.positions[:20])
    more = f" and {len(event.positions) - 20} more" if len(event.positions) > 20 else ""
    bodies = f"; {event.quarantined} quarantined bodies" if event.quarantined else ""
    return f"evidence of positions {where}{more} erased{bodies}: {event.reason}"


def scrub(ledger: ConsentLedger) -> bool:
    """Scrub erased bytes from the store's files; whether it completed."""
    try:
        ledger.store.scrub()
    except StoreUnavailable:
        return False
    return True


def _erase(
    ledger: ConsentLedger,
    tenant: str,
    msisdn: str | None,
    positions: list[int],
    bodies: list[int],
    reason: str,
    actor: str,
) -> Erasure:
    tombstone = Draft(
        tenant=tenant,
        key=new_key("erasure"),
        subaccount=None,
        msisdn=msisdn,
        occurred_at=None,
        event=EvidenceErased(
            reason=reason, actor=actor, positions=tuple(positions), quarantined=len(bodies)
        ),
    )
    appended = ledger.store.erase(positions, reason, tombstone, bodies)
    assert appended is not None  # a tombstone was given
    return Erasure(
        tombstone=appended.position,
        positions=positions,
        quarantined=len(bodies),
        scrubbed=scrub(ledger),
    )


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidInput("an erasure needs a reason (a ticket reference)")
    if len(reason) > MAX_REASON:
        raise InvalidInput(
            f"the reason is longer than {MAX_REASON} characters: give a ticket reference, "
            "never personal data (it is kept in the immutable log)"
        )
    return reason


def _unerased(ledger: ConsentLedger, positions: list[int]) -> set[int]:
    rows = ledger.read_model.evidence(positions)
    return {p for p, (salt, content) in rows.items() if salt is not None or content is not None}


def _quarantined_with(ledger: ConsentLedger, tenant: str, msisdn: str) -> Iterable[int]:
    """Ids of ``tenant``'s quarantined bodies holding ``msisdn``: in E.164 with or without
    ``+``/``00``, or its national digits (with a trunk 0), separators ignored."""
    code, national = number_parts(msisdn)
    pattern = re.compile(
        rb"(?<!\d)(?:(?:\+|00)?" + code.encode() + rb"|0)?" + national.encode() + rb"(?!\d)"
    )
    after = 0
    while True:
        page = ledger.store.quarantined(tenant, after_id=after, limit=QUARANTINE_PAGE)
        for record in page:
            compact = re.sub(rb"(?<=\d)[ .()\-](?=\d)", b"", record.body)
            if record.body and pattern.search(compact):
                yield record.id
        if len(page) < QUARANTINE_PAGE:
            return
        after = page[-1].id
