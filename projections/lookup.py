"""Everything the ledger holds about one number of one tenant, for every subaccount at once.

The read behind the compliance console's number page (``api.console``), engine-neutral: it asks
the read model only. Guarantees: ``look_up`` reads in one snapshot, so the decisions, timelines
and entries reflect exactly one log position (``NumberLookup.position``, at most the head it
saw); every entry shown is the tenant's own (another tenant's number looks as if it had no
record); entries recorded after ``position`` are left out, as are retractions and resolutions
recorded after it. ``read_number`` reads bare digits the way the API does: in a subaccount's
default region, and refuses to guess when the tenant's subaccounts would read them differently.
"""

from __future__ import annotations

import msgspec

from ledger.errors import InvalidInput, InvalidNumber
from ledger.msisdn import to_e164
from ledger.store import StoredEntry
from projections.decisions import Decision
from projections.ids import valid_subaccount
from projections.ledger import ConsentLedger
from projections.read_model import Evidence
from projections.timeline import Interval


class SubaccountRow(msgspec.Struct, frozen=True, kw_only=True):
    """One subaccount's answer for the number: its decision and its consent intervals."""

    subaccount: str
    known: bool
    """Whether the subaccount is registered (an unknown one is still answered)."""
    decision: Decision
    intervals: list[Interval]


class NumberLookup(msgspec.Struct, frozen=True, kw_only=True):
    """The number's decisions per subaccount, timelines and entries as known at ``position``."""

    tenant: str
    msisdn: str
    at: str
    """The valid time the decisions are for (canonical)."""
    position: int
    """The log position everything reflects (the head, or the ``known_at`` asked for)."""
    head: int
    rows: list[SubaccountRow]
    entries: list[StoredEntry]
    """The number's entries and those targeting them (retractions, resolutions), oldest first."""
    evidence: Evidence


def look_up(
    ledger: ConsentLedger,
    tenant: str,
    msisdn: str,
    *,
    at: str | None = None,
    known_at: int | None = None,
) -> NumberLookup:
    """What the ledger holds about E.164 ``msisdn`` for every subaccount of ``tenant`` (the
    registered ones and any other the number's entries name), decided at valid time ``at``
    (canonical; now) as known at log position ``known_at`` (now)."""
    when = at or ledger.now()
    with ledger.read_model.snapshot() as view:
        head = view.head()
        position = head if known_at is None else min(known_at, head)
        own = [s for s in view.number_entries(tenant, msisdn) if s.position <= position]
        found = {s.position: s for s in own}
        for stored in view.targeting_entries(tenant, list(found)):
            if stored.position <= position:
                found.setdefault(stored.position, stored)
        entries = [found[p] for p in sorted(found)]
        known = {s.subaccount for s in view.subaccounts(tenant)}
        named = {s.entry.subaccount for s in own if s.entry.subaccount}
        rows = [
            SubaccountRow(
                subaccount=sub,
                known=sub in known,
                decision=view.decide(tenant, sub, msisdn, when, position),
                intervals=view.intervals(tenant, sub, msisdn, position),
            )
            for sub in sorted(known | {n for n in named if _is_id(n)})
        ]
        return NumberLookup(
            tenant=tenant,
            msisdn=msisdn,
            at=when,
            position=position,
            head=head,
            rows=rows,
            entries=entries,
            evidence=view.evidence(list(found)),
        )


def read_number(ledger: ConsentLedger, tenant: str, raw: str, subaccount: str | None) -> str:
    """``raw`` as E.164: bare digits read in ``subaccount``'s default region when one is named;
    otherwise in the default region of every registered subaccount (and the tenant's), which
    must all agree. ``InvalidInput`` (naming the readings) when they do not, ``InvalidNumber``
    when no reading is valid."""
    if subaccount:
        valid_subaccount(subaccount)
        return ledger.normalize_msisdn(tenant, subaccount, raw)
    regions = {s.default_region for s in ledger.subaccounts(tenant)} | {
        ledger.tenant_region(tenant)
    }
    readings: dict[str, list[str]] = {}
    first_error: InvalidNumber | None = None
    for region in sorted(regions, key=lambda r: r or ""):
        try:
            number = to_e164(raw, region)
        except InvalidNumber as exc:
            first_error = first_error or exc
            continue
        readings.setdefault(number, []).append(region or "international")
    if len(readings) == 1:
        return next(iter(readings))
    if not readings:
        assert first_error is not None
        raise first_error
    shown = "; ".join(f"{n} (read in {', '.join(r)})" for n, r in sorted(readings.items()))
    raise InvalidInput(
        f"{raw.strip()!r} reads as different numbers in your subaccounts' regions: {shown}; "
        "choose the subaccount whose region applies, or give the number with its country code"
    )


def _is_id(subaccount: str) -> bool:
    try:
        valid_subaccount(subaccount)
    except InvalidInput:
        return False
    return True
