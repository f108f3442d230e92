"""Evidence retention: erase the evidence of entries that stopped deciding anything longer ago
than the tenant's ``evidence_retention_days`` (docs/adopting.md).

Guarantees:
- only the evidence of consent entries superseded (a later entry of the same number and scope,
  not retracted) or retracted at or before now − ``evidence_retention_days`` is erased; the
  evidence of an entry that still decides a number's state is kept, whatever its age; help
  requests and review flags keep theirs;
- nothing about consent changes (``projections.erasure``'s guarantees); each run that erases
  anything appends one ``evidence.erased`` tombstone naming the period and the cut-off first,
  then erases in bounded batches (a run cut short is finished by the next);
- a tenant without a retention period keeps every evidence record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import msgspec

from ledger.events import EvidenceErased
from ledger.store import Draft
from ledger.timefmt import format_time
from projections.erasure import scrub
from projections.ids import new_key
from projections.ledger import ConsentLedger

BATCH = 1000
"""Entries whose evidence one transaction erases."""


class RetentionRun(msgspec.Struct, frozen=True, kw_only=True):
    """What one run did for one tenant."""

    tenant: str
    evidence_retention_days: int | None
    superseded_before: str | None
    erased: int
    tombstone: int | None
    scrubbed: bool


def apply_retention(
    ledger: ConsentLedger,
    tenant: str,
    *,
    actor: str,
    progress: Callable[[int], None] = lambda _: None,
) -> RetentionRun:
    """Erase what ``tenant``'s retention period says is due now (see the module guarantees);
    ``progress`` gets the count erased so far."""
    days = ledger.evidence_retention(tenant)
    if days is None:
        return RetentionRun(
            tenant=tenant,
            evidence_retention_days=None,
            superseded_before=None,
            erased=0,
            tombstone=None,
            scrubbed=True,
        )
    cutoff = format_time(ledger.clock() - timedelta(days=days))
    page = ledger.read_model.superseded(tenant, cutoff, 0, BATCH)
    tombstone: int | None = None
    erased = 0
    while page:
        if tombstone is None:
            tombstone = _tombstone(ledger, tenant, actor, days, cutoff)
        reason = (
            f"retention ({days} days): superseded before {cutoff}; tombstone at position "
            f"{tombstone}"
        )
        ledger.store.erase(page, reason)
        erased += len(page)
        progress(erased)
        page = ledger.read_model.superseded(tenant, cutoff, page[-1], BATCH)
    return RetentionRun(
        tenant=tenant,
        evidence_retention_days=days,
        superseded_before=cutoff,
        erased=erased,
        tombstone=tombstone,
        scrubbed=scrub(ledger) if erased else True,
    )


def apply_everywhere(ledger: ConsentLedger, *, actor: str) -> list[RetentionRun]:
    """``apply_retention`` for every tenant that has a retention period."""
    tenants = ledger.read_model.configured_tenants()
    return [
        apply_retention(ledger, t, actor=actor)
        for t in tenants
        if ledger.evidence_retention(t) is not None
    ]


def _tombstone(ledger: ConsentLedger, tenant: str, actor: str, days: int, cutoff: str) -> int:
    event = EvidenceErased(
        reason=f"evidence retention of {days} days",
        actor=actor,
        retention_days=days,
        superseded_before=cutoff,
    )
    draft = Draft(
        tenant=tenant,
        key=new_key("retention"),
        subaccount=None,
        msisdn=None,
        occurred_at=None,
        event=event,
    )
    return ledger.append([draft])[0].position
