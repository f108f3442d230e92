"""Turning a draft into the next entry: the one place, for every adapter, where an entry's
position, event id, recorded time, evidence salt and occurred time are chosen.

Guarantees: positions follow the write cursor densely; ``recorded_at`` is the group's one time
(read once from the store's clock, never before the newest recorded time); an ``occurred_at``
later than ``recorded_at`` is clamped to it, and the entry keeps the time the request named
(``Entry.occurred_at_requested``); evidence gets a fresh salt and its digest goes into the
entry. Nothing is written here: the adapter stores what it returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import msgspec

from ledger.entries import (
    ENTRY_VERSION,
    Entry,
    encode_entry,
    encode_evidence,
    evidence_digest,
    leaf_hash,
    new_salt,
)
from ledger.events import event_type
from ledger.group_commit import WriteCursor
from ledger.store import Committed, Draft, StoredEntry


class NextEntry(msgspec.Struct, frozen=True, gc=False):
    """A draft made the next entry, with its evidence's salt and content (``None`` without
    evidence), ready to store."""

    committed: Committed
    salt: bytes | None
    content: bytes | None


def next_entry(draft: Draft, cursor: WriteCursor, now: Callable[[], str]) -> NextEntry:
    """``draft`` as the entry after ``cursor`` (advanced past it; ``cursor.mark``/``restore``
    undo that when the adapter finds the key taken). ``now`` gives the canonical current time
    of the store's clock, read once per group."""
    if cursor.now is None:
        cursor.now = max(now(), cursor.last_recorded)
    recorded = cursor.now
    position = cursor.head + 1
    salt = content = digest = None
    if draft.evidence is not None:
        salt, content = new_salt(), encode_evidence(draft.evidence)
        digest = evidence_digest(salt, content)
    occurred = draft.occurred_at or recorded
    requested = occurred if occurred > recorded else None
    entry = Entry(
        v=ENTRY_VERSION,
        position=position,
        event_id=str(uuid.uuid4()),
        key=draft.key,
        tenant=draft.tenant,
        subaccount=draft.subaccount,
        msisdn=draft.msisdn,
        type=event_type(draft.event),
        occurred_at=recorded if requested else occurred,
        recorded_at=recorded,
        event=draft.event,
        evidence_digest=digest,
        occurred_at_requested=requested,
    )
    data = encode_entry(entry)
    cursor.head, cursor.last_recorded = position, recorded
    return NextEntry(Committed(StoredEntry(position, data, leaf_hash(data)), entry), salt, content)
