"""Exporting suppression lists and consent records: one rule for ``consent-ledger export`` and
``GET /v1/suppression/{subaccount}`` (docs/adopting.md).

Guarantees:
- a suppression list names exactly the numbers for which ``ConsentLedger.decide`` answers
  ``opted_out`` for the subaccount at the valid time asked (tenant-wide opt-outs included), each
  with the entry that decides it; numbers in ``unknown`` state are never listed (even under
  ``unknown: deny`` — they are not on file);
- the tenant-wide list names the numbers that every subaccount must not send to: a tenant-wide
  opt-out decides and no subaccount's own later opt-in lifts it (8x8's account-wide blacklist
  must not block a subaccount that may send);
- every answer is as known at one log position (the head when the export starts): entries
  appended meanwhile never half-appear; the listing is streamed a page at a time in msisdn
  order, so memory does not grow with the list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import msgspec

from ledger.entries import Entry
from ledger.events import ConsentGranted, ConsentRevoked
from ledger.timefmt import normalize_time
from projections.ledger import ConsentLedger
from projections.read_model import FactPage, NumberFact

PAGE = 5000
"""Numbers examined per read."""


class SuppressedNumber(msgspec.Struct, frozen=True, kw_only=True):
    """A number that must not be sent to, and the entry that decides it."""

    msisdn: str
    scope: Literal["subaccount", "tenant"]
    """Whether the deciding opt-out was the subaccount's own or tenant-wide."""
    position: int
    keyword: str | None
    method: str | None
    occurred_at: str


SUPPRESSED_COLUMNS = ("msisdn", "scope", "position", "keyword", "method", "occurred_at")
"""The columns of a suppression list as CSV, in order."""


def csv_row(number: SuppressedNumber) -> list[str]:
    """``number`` as one CSV row (``SUPPRESSED_COLUMNS``)."""
    return [
        number.msisdn,
        number.scope,
        str(number.position),
        number.keyword or "",
        number.method or "",
        number.occurred_at,
    ]


class ConsentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The latest consent of one (subaccount or tenant-wide, number), field names after
    ISO/IEC TS 27560 (the README's table maps each)."""

    record_id: str
    controller: str
    subject: str
    subaccount: str
    """A subaccount id, or ``*`` for a tenant-wide record."""
    state: Literal["given", "withdrawn"]
    event_type: str
    event_time: str
    recorded_at: str
    method: str | None
    actor: str | None
    purpose: str | None
    notice: str | None
    keyword: str | None
    position: int


class _BriefEvent(msgspec.Struct, frozen=True, gc=False):
    keyword: str | None = None
    method: str | None = None


class _Brief(msgspec.Struct, frozen=True, gc=False):
    """What a suppression list shows of an entry (the rest of its bytes is skipped)."""

    occurred_at: str
    event: _BriefEvent


_BRIEF = msgspec.json.Decoder(_Brief)


class Export(msgspec.Struct, frozen=True, kw_only=True):
    """The question an export answers: valid time ``at`` as known at log position
    ``known_at``."""

    tenant: str
    at: str
    known_at: int


def export_point(ledger: ConsentLedger, tenant: str, at: str | None) -> Export:
    """The export's question: ``at`` (now when ``None``), as known at the log head now."""
    return Export(
        tenant=tenant, at=normalize_time(at) if at else ledger.now(), known_at=ledger.head()
    )


def suppression_list(
    ledger: ConsentLedger,
    point: Export,
    subaccount: str | None,
    *,
    page: int = PAGE,
    progress: Callable[[int], None] = lambda _: None,
) -> Iterator[SuppressedNumber]:
    """Every number ``subaccount`` must not send to (``None``: every subaccount), in msisdn
    order (see the module guarantees); ``progress`` gets the count of numbers examined."""

    def read(after: tuple[str, str]) -> FactPage:
        return ledger.read_model.suppressed(
            point.tenant, subaccount, point.at, point.known_at, after, page
        )

    brief = _BRIEF.decode
    for facts in _pages(read, page, progress):
        stored = ledger.read_model.entries_at([f.position for f in facts])
        entries = {s.position: brief(s.data) for s in stored}
        for fact in facts:
            entry = entries[fact.position]
            yield SuppressedNumber(
                msisdn=fact.msisdn,
                scope="tenant" if fact.scope == "" else "subaccount",
                position=fact.position,
                keyword=entry.event.keyword,
                method=entry.event.method,
                occurred_at=entry.occurred_at,
            )


def consent_records(
    ledger: ConsentLedger,
    point: Export,
    *,
    page: int = PAGE,
    progress: Callable[[int], None] = lambda _: None,
) -> Iterator[ConsentRecord]:
    """The latest consent of every (subaccount or tenant-wide, number) of the tenant that has
    one, in (msisdn, subaccount) order."""

    def read(after: tuple[str, str]) -> FactPage:
        return ledger.read_model.consent_states(point.tenant, point.at, point.known_at, after, page)

    for facts in _pages(read, page, progress):
        entries = _entries(ledger, facts)
        for fact in facts:
            yield _record(entries[fact.position], fact)


def _pages(
    read: Callable[[tuple[str, str]], FactPage], page: int, progress: Callable[[int], None]
) -> Iterator[list[NumberFact]]:
    after: tuple[str, str] | None = ("", "")
    done = 0
    while after is not None:
        found = read(after)
        done += page if found.cursor is not None else len(found.facts)
        progress(done)
        yield found.facts
        after = found.cursor


def _entries(ledger: ConsentLedger, facts: list[NumberFact]) -> dict[int, Entry]:
    stored = ledger.read_model.entries_at([f.position for f in facts])
    return {s.position: s.entry for s in stored}


def _record(entry: Entry, fact: NumberFact) -> ConsentRecord:
    event = entry.event
    assert isinstance(event, ConsentRevoked | ConsentGranted)  # only consent entries are facts
    return ConsentRecord(
        record_id=entry.event_id,
        controller=entry.tenant,
        subject=fact.msisdn,
        subaccount=fact.scope or "*",
        state="withdrawn" if isinstance(event, ConsentRevoked) else "given",
        event_type=entry.type,
        event_time=entry.occurred_at,
        recorded_at=entry.recorded_at,
        method=event.method,
        actor=event.actor,
        purpose=event.purpose,
        notice=event.notice_version,
        keyword=event.keyword,
        position=entry.position,
    )
