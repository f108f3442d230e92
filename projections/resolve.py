"""Resolving review items: a person decides what a flagged message or unresolved opt-out meant.

Guarantees: a resolution is appended as one atomic unit — for ``opt_out`` and ``assign`` a
``consent.revoked`` on the named (known) subaccount, valid from the original message's occurred
time and naming the item in ``resolves``, then the ``review.resolved`` that closes the item; for
``dismiss`` the ``review.resolved`` alone; for ``accept`` (an imported opt-in held for review,
docs/adopting.md) the ``consent.granted`` it withheld, valid from its own date and naming the item
in ``resolves``, then the ``review.resolved``. An item is resolved at most once: a closed item is
refused (``AlreadyResolved``) and nothing is written.

A resolution lifts suppression only when asked to explicitly: the tenant-wide opt-out behind an
unresolved item stays in force unless an ``assign`` says ``narrow``; then the retraction of the
tenant-wide opt-out is part of the same atomic unit (after the ``review.resolved``), so no
reader ever sees it lifted without the subaccount's opt-out in force. Only an opt-out that was
tenant-wide solely because its subaccount was unresolved can be narrowed: one tenant-wide by its
keyword (STOPALL, STOP ALL) or by the tenant's ``revoke_all`` — when it was received or now — is
refused (``NotNarrowable``) and nothing is written.
"""

from __future__ import annotations

import msgspec

from ledger.entries import Entry
from ledger.errors import Conflict, InvalidInput, NotFound, UnknownSubaccount
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    Event,
    ReviewAction,
    ReviewFlagged,
    ReviewResolved,
)
from ledger.keywords import TENANT_WIDE_KEYWORDS, tokenize
from ledger.store import Appended, Draft
from projections.ids import new_key, valid_subaccount
from projections.ledger import ConsentLedger
from projections.review import ReviewItem

MAX_NOTE = 2000


_TENANT_WIDE_TOKENS = frozenset(map(tokenize, TENANT_WIDE_KEYWORDS))


class AlreadyResolved(Conflict):
    """The review item was already closed (by a resolution or a retraction)."""


class NotNarrowable(InvalidInput):
    """A resolution asked to narrow an opt-out that is tenant-wide for a reason of its own."""


class Resolution(msgspec.Struct, frozen=True, kw_only=True):
    """What a resolution appended, and what the reviewer should know about it."""

    item: ReviewItem
    action: ReviewAction
    subaccount: str | None
    opt_out: Appended | None
    resolved: Appended
    retraction: Appended | None
    """The retraction of the tenant-wide opt-out (only when narrowed)."""
    notes: tuple[str, ...]
    opt_in: Appended | None = None
    """The opt-in an ``accept`` recorded."""


def resolve(
    ledger: ConsentLedger,
    tenant: str,
    position: int,
    *,
    action: ReviewAction,
    note: str,
    actor: str,
    subaccount: str | None = None,
    narrow: bool = False,
) -> Resolution:
    """Resolve the open review item at ``position`` of ``tenant`` (see the module guarantees).

    ``narrow`` (``assign`` only): also retract the tenant-wide opt-out, in the same atomic
    unit, so that it applies to the assigned subaccount alone from now on.

    Raises ``NotFound`` (no such item for this tenant), ``AlreadyResolved``, or
    ``InvalidInput`` (blank note, a subaccount that is missing, unknown or not allowed for the
    action; ``NotNarrowable``) before writing anything.
    """
    item = _open_item(ledger, tenant, position)
    note = _note(note)
    original = ledger.store.read_positions([position])[0].entry
    if action == "accept":
        return _accept(ledger, tenant, item, original, note, actor, subaccount, narrow)
    target = _target(ledger, tenant, item, action, subaccount, original.subaccount)
    if narrow:
        _check_narrowable(ledger, tenant, action, original)
    drafts: list[Draft] = []
    if target is not None:
        drafts.append(_opt_out(ledger, tenant, item, original.event, target, actor))
    drafts.append(
        Draft(
            tenant=tenant,
            key=new_key("review-resolution"),
            subaccount=target or original.subaccount,
            msisdn=item.msisdn,
            occurred_at=None,
            event=ReviewResolved(
                position=position, action=action, note=note, actor=actor, subaccount=target
            ),
        )
    )
    if narrow:  # after the resolution: a retraction would close the item itself
        reason = f"narrowed to subaccount {target!r} by the resolution of review item {position}"
        drafts.append(ledger.retraction_draft(tenant, position, reason=reason, actor=actor))
    try:
        appended = ledger.append(drafts)
    except NotFound:  # closed by a concurrent resolution between our read and our write
        _open_item(ledger, tenant, position)
        raise
    resolved = 1 if target is not None else 0
    return Resolution(
        item=item,
        action=action,
        subaccount=target,
        opt_out=appended[0] if target is not None else None,
        resolved=appended[resolved],
        retraction=appended[resolved + 1] if narrow else None,
        notes=_notes(item, action, target, narrow),
    )


def _accept(
    ledger: ConsentLedger,
    tenant: str,
    item: ReviewItem,
    original: Entry,
    note: str,
    actor: str,
    subaccount: str | None,
    narrow: bool,
) -> Resolution:
    """Record the opt-in an imported row held for review, then close the item."""
    event = original.event
    if not isinstance(event, ReviewFlagged) or event.withheld != "opt_in":
        raise InvalidInput(
            "accept records an imported opt-in held for review; this item holds none "
            "(use opt_out or dismiss)"
        )
    if subaccount is not None or narrow:
        raise InvalidInput(
            "accept takes no subaccount and no narrow: it records the opt-in as held"
        )
    granted = Draft(
        tenant=tenant,
        key=new_key("review-accept"),
        subaccount=original.subaccount,
        msisdn=original.msisdn,
        occurred_at=original.occurred_at,
        event=ConsentGranted(
            scope="subaccount",
            keyword=event.keyword,
            match=event.match,
            policy=event.policy,
            channel=event.channel,
            method=event.method,
            actor=event.actor,
            notice_version=event.notice_version,
            recorded_by=actor,
            resolves=item.position,
        ),
    )
    closing = Draft(
        tenant=tenant,
        key=new_key("review-resolution"),
        subaccount=original.subaccount,
        msisdn=item.msisdn,
        occurred_at=None,
        event=ReviewResolved(position=item.position, action="accept", note=note, actor=actor),
    )
    try:
        appended = ledger.append([granted, closing])
    except NotFound:  # closed by a concurrent resolution between our read and our write
        _open_item(ledger, tenant, item.position)
        raise
    return Resolution(
        item=item,
        action="accept",
        subaccount=original.subaccount,
        opt_out=None,
        resolved=appended[1],
        retraction=None,
        notes=(
            f"opted in to subaccount {original.subaccount!r} from {original.occurred_at} "
            f"(position {appended[0].position}), as the imported row said",
        ),
        opt_in=appended[0],
    )


def _open_item(ledger: ConsentLedger, tenant: str, position: int) -> ReviewItem:
    item = ledger.review_item(tenant, position)
    if item.closed_by is not None:
        raise AlreadyResolved(
            f"the review item at position {position} was already closed "
            f"({item.closed_how}) by position {item.closed_by}"
        )
    return item


def _note(note: str) -> str:
    note = note.strip()
    if not note:
        raise InvalidInput("a resolution needs a note saying why")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"the note is longer than {MAX_NOTE} characters")
    return note


def _target(
    ledger: ConsentLedger,
    tenant: str,
    item: ReviewItem,
    action: ReviewAction,
    subaccount: str | None,
    received_on: str | None,
) -> str | None:
    """The subaccount the resolution opts out of (``None`` for dismiss), validated."""
    if item.kind == "reply" and action != "dismiss":
        raise InvalidInput(
            "an uncertain reply is closed with dismiss: it is never sent again, and whether 8x8 "
            "took it stays unknown unless a delivery receipt arrives"
        )
    if action == "dismiss":
        if subaccount is not None:
            raise InvalidInput("dismiss takes no subaccount (it changes no consent)")
        return None
    if action == "assign" and item.kind != "unresolved":
        raise InvalidInput(
            "assign names the subaccount of an opt-out whose subaccount was unresolved; "
            "for a flagged message use opt_out (with a subaccount to choose another one)"
        )
    target = subaccount or (received_on if item.kind in ("flagged", "check") else None)
    if target is None:
        raise InvalidInput(
            f"the opt-out at position {item.position} has no resolved subaccount; "
            "name the subaccount it was meant for"
        )
    valid_subaccount(target)
    if ledger.settings(tenant, target) is None:
        raise UnknownSubaccount(f"subaccount {target!r} is not known; register it first")
    return target


def _check_narrowable(
    ledger: ConsentLedger, tenant: str, action: ReviewAction, original: Entry
) -> None:
    """Refuse to narrow unless the opt-out is tenant-wide only because its subaccount was
    unresolved."""
    if action != "assign":
        raise InvalidInput(
            "narrow goes with assign only: it narrows an unresolved opt-out to the subaccount "
            "it is assigned to"
        )
    event = original.event
    assert isinstance(event, ConsentRevoked)  # an unresolved item: assign checked it
    where = f"the opt-out at position {original.position}"
    if event.keyword is not None and tokenize(event.keyword) in _TENANT_WIDE_TOKENS:
        raise NotNarrowable(
            f"{where} is tenant-wide by its keyword {event.keyword} (the person opted out of "
            "every subaccount) and cannot be narrowed; assign without narrow"
        )
    if event.revoke_all:
        raise NotNarrowable(
            f"{where} is tenant-wide because the tenant had revoke_all on when it was received "
            "and cannot be narrowed; assign without narrow"
        )
    if ledger.revoke_all(tenant):
        raise NotNarrowable(
            "the tenant has revoke_all on, so every opt-out applies to every subaccount: "
            f"{where} cannot be narrowed; assign without narrow"
        )


def _opt_out(
    ledger: ConsentLedger, tenant: str, item: ReviewItem, original: Event, target: str, actor: str
) -> Draft:
    revoke_all = ledger.revoke_all(tenant)
    return Draft(
        tenant=tenant,
        key=new_key("review-opt-out"),
        subaccount=target,
        msisdn=item.msisdn,
        occurred_at=item.occurred_at,
        event=ConsentRevoked(
            scope="tenant" if revoke_all else "subaccount",
            keyword=getattr(original, "keyword", None),
            match=None,
            policy=getattr(original, "policy", None),
            channel=getattr(original, "channel", "sms"),
            method="admin",
            actor=actor,
            purpose=getattr(original, "purpose", None),
            notice_version=getattr(original, "notice_version", None),
            revoke_all=revoke_all,
            resolves=item.position,
        ),
    )


def _notes(
    item: ReviewItem, action: ReviewAction, target: str | None, narrow: bool
) -> tuple[str, ...]:
    if item.kind == "reply":
        return ("dismissed: the reply is never sent again; consent is unchanged",)
    if item.kind == "flagged":
        if target is None:
            return ("dismissed: consent is unchanged",)
        return (f"opted out of subaccount {target!r} from {item.occurred_at}",)
    if item.kind == "check":
        kept = f"the opt-out at position {item.position} stays in force as recorded"
        if target is None:
            return ("dismissed: " + kept,)
        return (f"opted out of subaccount {target!r} from {item.occurred_at}", kept)
    if narrow:
        return (
            f"opted out of subaccount {target!r} from {item.occurred_at}",
            f"the tenant-wide opt-out at position {item.position} was retracted in the same "
            "step: it no longer applies to any other subaccount",
        )
    wide = (
        f"the tenant-wide opt-out at position {item.position} stays in force for every "
        "subaccount (when in doubt, suppress); to narrow it, retract it: POST /v1/retractions "
        f'{{"position": {item.position}, "reason": "..."}}'
    )
    if target is None:
        return ("dismissed: " + wide,)
    return (f"opted out of subaccount {target!r} from {item.occurred_at}", wide)
