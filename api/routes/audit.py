"""Evidence for people: the audit trail of a number (JSON or CSV) and the open review queue.

Guarantees: a trail reflects exactly one log position and lists, oldest first, every entry that
bears on the number for the subaccount (see ``projections.audit``), each with its leaf hash and
its evidence unless erased; "no record" is an answer (200, empty entries, ``unknown`` decision),
never a 404. Another tenant's numbers look as if they had no record. CSV cells that a
spreadsheet would run as a formula are prefixed with ``'``. Nothing here writes to the log.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Parameter, QueryParameter

from api.auth import tenant_of
from api.keys import Principal
from api.routes.consent import MSISDN, SUBACCOUNT
from api.routes.log import MAX_INT
from api.state import Services
from api.subject import subject_of
from api.views import DecisionView, decision_view
from ledger.entries import Entry, Evidence, b64, decode_evidence, evidence_matches
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    EntryRetracted,
    Event,
    EvidenceErased,
    ReviewFlagged,
    ReviewResolved,
)
from ledger.store import StoredEntry
from ledger.timefmt import parse_time
from projections import audit
from projections.erasure import RETENTION_NOTE, erasure_detail, erasure_notes
from projections.review import ReviewItem
from projections.timeline import Interval

TAGS = ["audit"]
COMPLETENESS = (
    "These are the entries this ledger holds for the number. Each leaf_hash can be proven "
    "included in the signed log; an inclusion proof shows that an entry is in the log, not "
    "that no entry is missing."
)


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One log entry as an auditor reads it (flat fields, then the full event document)."""

    position: int
    type: str
    event_id: str
    occurred_at: str
    recorded_at: str
    subaccount: str | None
    msisdn: str | None
    scope: str | None
    method: str | None
    actor: str | None
    keyword: str | None
    match: str | None
    policy: str | None
    channel: str | None
    target: int | None
    """The position this entry retracts, resolves, or (for an admin opt-out) resolves."""
    detail: str | None
    leaf_hash: str
    evidence_digest: str | None
    evidence: Evidence | None
    evidence_erased: bool
    evidence_matches: bool | None
    """Whether the stored evidence still hashes to the entry's digest (``None``: none kept)."""
    event: Event
    recorded_by: str | None = None
    """Who recorded it: the API key (``key:<id>``) or the command-line user (``cli:<user>``)."""
    claimed_actor: str | None = None
    """Who the client said performed it: a claim, shown as such, never verified."""
    evidence_erased_note: str | None = None
    """For erased evidence: "evidence erased on D: R" (the tombstone's date and reason)."""


class AuditTrail(msgspec.Struct, frozen=True, kw_only=True):
    """The whole trail of (subaccount, msisdn) as of ``log_position``."""

    subaccount: str
    msisdn: str
    log_position: int
    entries: list[AuditEntry]
    configuration: list[AuditEntry]
    timeline: list[Interval]
    decision: DecisionView
    completeness: str = COMPLETENESS


def _target(event: Event) -> int | None:
    if isinstance(event, EntryRetracted | ReviewResolved):
        return event.position
    if isinstance(event, ConsentRevoked):
        return event.resolves
    return None


def _detail(event: Event) -> str | None:
    if isinstance(event, ReviewFlagged | EntryRetracted):
        return event.reason
    if isinstance(event, EvidenceErased):
        return erasure_detail(event)
    if isinstance(event, ReviewResolved):
        onto = f" (subaccount {event.subaccount})" if event.subaccount else ""
        return f"{event.action}{onto}: {event.note}"
    if isinstance(event, ConsentRevoked):
        notes = []
        if event.unresolved_subaccount is not None:
            notes.append(f"subaccount {event.unresolved_subaccount!r} not resolved; tenant-wide")
        if event.revoke_all:
            notes.append("tenant-wide because the tenant has revoke_all on")
        if event.provider_time is not None:
            notes.append(f"provider time {event.provider_time} was in the future; replaced")
        return "; ".join(notes) or None
    return None


def audit_entry(
    stored: StoredEntry, evidence: audit.Evidence, notes: dict[int, str] | None = None
) -> AuditEntry:
    """Shape one stored entry and its evidence row for auditors (``notes``: what the trail's
    tombstones say of erased evidence, by position)."""
    entry: Entry = stored.entry
    event = entry.event
    shown, erased, matches, note = None, False, None, None
    if stored.position in evidence:
        salt, content = evidence[stored.position]
        erased = content is None
        note = (notes or {}).get(stored.position, RETENTION_NOTE) if erased else None
        if salt is not None and content is not None and entry.evidence_digest is not None:
            shown = decode_evidence(content)
            matches = evidence_matches(entry.evidence_digest, salt, content)
    return AuditEntry(
        position=stored.position,
        type=entry.type,
        event_id=entry.event_id,
        occurred_at=entry.occurred_at,
        recorded_at=entry.recorded_at,
        subaccount=entry.subaccount,
        msisdn=entry.msisdn,
        scope=event.scope if isinstance(event, ConsentRevoked | ConsentGranted) else None,
        method=getattr(event, "method", None),
        actor=getattr(event, "actor", None),
        keyword=getattr(event, "keyword", None),
        match=getattr(event, "match", None),
        policy=getattr(event, "policy", None),
        channel=getattr(event, "channel", None),
        target=_target(event),
        detail=_detail(event),
        leaf_hash=b64(stored.leaf_hash),
        evidence_digest=entry.evidence_digest,
        evidence=shown,
        evidence_erased=erased,
        evidence_matches=matches,
        event=event,
        recorded_by=getattr(event, "recorded_by", None),
        claimed_actor=getattr(event, "claimed_actor", None),
        evidence_erased_note=note,
    )


CSV_COLUMNS = (
    "position", "type", "occurred_at", "recorded_at", "subaccount", "msisdn", "scope", "method",
    "actor", "keyword", "match", "policy", "channel", "target", "detail", "leaf_hash",
    "evidence_digest", "evidence_erased", "evidence_text", "evidence_profile_name",
    "evidence_raw_body", "event_id", "recorded_by", "claimed_actor",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def csv_safe(value: object) -> str:
    """A cell a spreadsheet will not run as a formula: a cell starting with ``= + - @``, a tab
    or a carriage return gets a leading ``'``, except a strict E.164 number (``+`` and 7 to 15
    digits, nothing else), which no spreadsheet can run and is left as it is."""
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if text.startswith(_FORMULA_START) and not _E164.fullmatch(text):
        return "'" + text
    return text


def trail_csv(entries: list[AuditEntry]) -> str:
    """The entries as CSV, one row per entry (``CSV_COLUMNS``), formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        ev = e.evidence
        extra = {
            "evidence_text": ev.text if ev else e.evidence_erased_note,
            "evidence_profile_name": ev.profile_name if ev else None,
            "evidence_raw_body": ev.raw_body if ev else None,
        }
        writer.writerow([csv_safe(extra[c] if c in extra else getattr(e, c)) for c in CSV_COLUMNS])
    return out.getvalue()


_TRAIL_EXAMPLE = {
    "subaccount": "ACME_MKT",
    "msisdn": "+6581968289",
    "log_position": 3,
    "entries": [
        {
            "position": 2,
            "type": "consent.revoked",
            "event_id": "0b6f3a52-52c4-4c5e-9d1e-2f1f3c4b5a69",
            "occurred_at": "2026-03-02T09:15:27.431Z",
            "recorded_at": "2026-03-02T09:15:28.002Z",
            "subaccount": "ACME_MKT",
            "msisdn": "+6581968289",
            "scope": "subaccount",
            "method": "8x8-webhook",
            "actor": "data-subject",
            "keyword": "STOP",
            "match": "exact",
            "policy": "ACME_MKT@1",
            "channel": "sms",
            "target": None,
            "detail": None,
            "leaf_hash": "q1bS0nm0YbD1a1F0a2k3b4c5d6e7f8g9h0i1j2k3l4m=",
            "evidence_digest": "3q2+7w0bA4c1d2e3f4g5h6i7j8k9l0m1n2o3p4q5r6s=",
            "evidence": {"raw_body": '{"namespace":"SMS", ...}', "text": "STOP"},
            "evidence_erased": False,
            "evidence_matches": True,
            "event": {
                "type": "consent.revoked",
                "scope": "subaccount",
                "keyword": "STOP",
                "match": "exact",
                "policy": "ACME_MKT@1",
                "channel": "sms",
                "method": "8x8-webhook",
                "actor": "data-subject",
            },
        }
    ],
    "configuration": [],
    "timeline": [
        {
            "from": "2026-03-02T09:15:27.431Z",
            "to": None,
            "state": "opted_out",
            "position": 2,
            "scope": "subaccount",
        }
    ],
    "decision": {
        "allowed": False,
        "state": "opted_out",
        "msisdn": "+6581968289",
        "subaccount": "ACME_MKT",
        "subaccount_known": True,
        "reason": "opted out by STOP for this subaccount at 2026-03-02T09:15:27.431Z (position 2)",
        "decided_by": {
            "position": 2,
            "event_id": "0b6f3a52-52c4-4c5e-9d1e-2f1f3c4b5a69",
            "type": "consent.revoked",
            "occurred_at": "2026-03-02T09:15:27.431Z",
            "keyword": "STOP",
        },
        "at": "2026-06-01T10:00:00.000Z",
        "known_at": None,
        "log_position": 3,
        "known_at_note": None,
    },
    "completeness": COMPLETENESS,
}


@get(
    "/v1/audit/{subaccount:str}/{msisdn:str}",
    opt={"scope": "audit", "media_types": {200: ("text/csv",)}},
    sync_to_thread=True,
    tags=TAGS,
    summary="The audit trail of a number for a subaccount",
    description="Every entry that bears on the number for this subaccount (its own, tenant-wide "
    "and unresolved opt-outs, and the retractions and review resolutions that target them), "
    "oldest first, with evidence unless erased; the subaccount's and tenant's configuration "
    "entries; the consent intervals (`from` inclusive, `to` exclusive, null = open); and the "
    "current decision. `format=csv` gives one row per entry of `entries` (text/csv; cells "
    "starting with = + - @ are prefixed with ' so spreadsheets do not run them; a cell that is "
    "exactly an E.164 number, such as +6581968289, is left as it is).",
    responses={
        200: ResponseSpec(
            data_container=AuditTrail,
            description="The trail (JSON; or CSV with format=csv)",
            examples=[Example(summary="A STOP by SMS", value=_TRAIL_EXAMPLE)],
        )
    },
)
def audit_trail(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    subaccount: Annotated[str, SUBACCOUNT],
    msisdn: Annotated[str, MSISDN],
    fmt: Annotated[
        Literal["json", "csv"],
        QueryParameter(name="format", description="json (default) or csv"),
    ] = "json",
) -> Response[Any]:
    """The trail of one number, as JSON or CSV."""
    ledger = services.ledger
    tenant, number = subject_of(request.user, ledger, subaccount, msisdn)
    found = audit.trail(ledger, tenant, subaccount, number)
    notes = erasure_notes(s.entry for s in found.entries)
    entries = [audit_entry(s, found.evidence, notes) for s in found.entries]
    if fmt == "csv":
        return Response(
            trail_csv(entries),
            media_type="text/csv",
            headers={
                "Content-Disposition": 'attachment; filename="consent-audit.csv"',
                "X-Log-Position": str(found.head),
            },
        )
    body = AuditTrail(
        subaccount=subaccount,
        msisdn=number,
        log_position=found.head,
        entries=entries,
        configuration=[audit_entry(s, {}) for s in found.configuration],
        timeline=found.intervals,
        decision=decision_view(found.decision, number, subaccount),
    )
    return Response(body)


class ReviewView(msgspec.Struct, frozen=True, kw_only=True):
    """One open review item: what was received, how it was read, and how long it has waited."""

    position: int
    kind: str
    """``flagged`` (may be a revocation) or ``unresolved`` (opt-out applied tenant-wide)."""
    subaccount: str | None
    """The subaccount the message named (for ``unresolved``: the name that did not resolve)."""
    msisdn: str | None
    keyword: str | None
    match: str | None
    policy: str | None
    method: str | None
    channel: str | None
    actor: str | None
    reason: str | None
    text: str | None
    profile_name: str | None
    evidence_erased: bool
    occurred_at: str
    recorded_at: str
    age_seconds: int
    actions: list[str]


class ReviewQueue(msgspec.Struct, frozen=True, kw_only=True):
    """One page of open review items, oldest first; pass ``next_after_position`` as
    ``after_position`` for the next (``None``: no open item follows)."""

    items: list[ReviewView]
    count: int
    """Items on this page."""
    next_after_position: int | None


def review_view(
    item: ReviewItem, stored: StoredEntry | None, evidence: audit.Evidence, now: datetime
) -> ReviewView:
    """Shape one open item with its entry's classification and evidence."""
    shown = audit_entry(stored, evidence) if stored is not None else None
    ev = shown.evidence if shown else None
    age = int((now - parse_time(item.recorded_at)).total_seconds())
    reason = shown.detail if shown else None
    return ReviewView(
        position=item.position,
        kind=item.kind,
        subaccount=item.subaccount,
        msisdn=item.msisdn,
        keyword=item.keyword,
        match=shown.match if shown else None,
        policy=shown.policy if shown else None,
        method=shown.method if shown else None,
        channel=shown.channel if shown else None,
        actor=shown.actor if shown else None,
        reason=reason,
        text=ev.text if ev else None,
        profile_name=ev.profile_name if ev else None,
        evidence_erased=shown.evidence_erased if shown else False,
        occurred_at=item.occurred_at,
        recorded_at=item.recorded_at,
        age_seconds=max(age, 0),
        actions=_actions(item, stored),
    )


_ACTIONS = {"flagged": ["opt_out", "dismiss"], "reply": ["dismiss"]}
"""What a review item of each kind accepts (an uncertain reply is only ever dismissed)."""


def _actions(item: ReviewItem, stored: StoredEntry | None) -> list[str]:
    """The resolutions an item takes (``accept`` for an imported opt-in held for review)."""
    event = stored.entry.event if stored is not None else None
    if isinstance(event, ReviewFlagged) and event.withheld == "opt_in":
        return ["accept", "dismiss", "opt_out"]
    return _ACTIONS.get(item.kind, ["assign", "dismiss"])


_QUEUE_EXAMPLE = {
    "count": 1,
    "next_after_position": None,
    "items": [
        {
            "position": 7,
            "kind": "flagged",
            "subaccount": "ACME_MKT",
            "msisdn": "+6581968289",
            "keyword": "STOP",
            "match": "contains",
            "policy": "ACME_MKT@1",
            "method": "8x8-webhook",
            "channel": "sms",
            "actor": "data-subject",
            "reason": "the message contains the opt-out keyword STOP but is not clearly a "
            "revocation",
            "text": "can you stop the delivery at 5?",
            "profile_name": None,
            "evidence_erased": False,
            "occurred_at": "2026-03-02T09:15:27.431Z",
            "recorded_at": "2026-03-02T09:15:28.002Z",
            "age_seconds": 3600,
            "actions": ["opt_out", "dismiss"],
        }
    ],
}


@get(
    "/v1/review",
    opt={"scope": "audit"},
    sync_to_thread=True,
    tags=["review"],
    summary="Open review items, oldest first",
    description="Messages flagged for a person (they contain an opt-out keyword but are not "
    "clearly a revocation) and opt-outs whose subaccount could not be resolved (applied "
    "tenant-wide meanwhile). Resolve them with POST /v1/review/{position}/resolve. One page "
    "of at most `limit` items with a position after `after_position`; `next_after_position`, "
    "when not null, is the `after_position` of the next page (the cursor is the item's log "
    "position: items resolved meanwhile drop out, new ones come last, none is skipped).",
    responses={
        200: ResponseSpec(
            data_container=ReviewQueue,
            description="The queue",
            examples=[Example(summary="One flagged message", value=_QUEUE_EXAMPLE)],
        )
    },
)
def review_queue(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    limit: Annotated[int, Parameter(ge=1, le=1000, description="At most this many")] = 1000,
    after_position: Annotated[
        int, QueryParameter(ge=0, le=MAX_INT, description="Only items after this position")
    ] = 0,
) -> ReviewQueue:
    """One page of the open review items of the key's tenant."""
    tenant = tenant_of(request.user)
    ledger = services.ledger
    items = ledger.review_queue(tenant, after=after_position, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    positions = [i.position for i in items]
    stored = {s.position: s for s in audit.entries_at(ledger, tenant, positions)}
    evidence = audit.evidence_of(ledger, positions)
    now = ledger.clock()
    views = [review_view(i, stored.get(i.position), evidence, now) for i in items]
    following = items[-1].position if more else None
    return ReviewQueue(items=views, count=len(views), next_after_position=following)


ROUTES = [audit_trail, review_queue]
