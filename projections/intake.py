"""Intake: turn one consent message or request into log entries, by DESIGN §2's rules.

Guarantees:
- the entry's action follows the request's verb when it names one (an opt-out verb always
  wins; an opt-in whose text reads as an opt-out is refused), otherwise the keyword policy;
- a ``none`` message is answered and never stored;
- when in doubt, suppress: an opt-out whose subaccount is unknown applies tenant-wide and is
  queued for review; an opt-in or help for an unknown subaccount is refused; a provider time
  more than 5 minutes ahead is replaced by the receive time for an opt-out (and the entry keeps
  the original) and refused for an opt-in;
- every refusal raises before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from ledger.entries import Entry, Evidence
from ledger.errors import InvalidInput, UnknownSubaccount
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    Event,
    HelpRequested,
    Method,
    ReviewFlagged,
)
from ledger.keywords import Classification, Policy
from ledger.msisdn import to_e164
from ledger.store import Appended, Draft
from ledger.timefmt import FUTURE_TOLERANCE, format_time, parse_time
from projections.config import SubaccountSettings
from projections.ids import is_subaccount_id, new_key
from projections.ledger import ConsentLedger

Verb = Literal["opt_out", "opt_in", "help"]
Outcome = Literal["opted_out", "opted_in", "help", "review", "none"]

OUTCOME_OF_TYPE: dict[str, Outcome] = {
    "consent.revoked": "opted_out",
    "consent.granted": "opted_in",
    "help.requested": "help",
    "review.flagged": "review",
}

UNRESOLVED_MAX = 64
"""How much of an unresolvable subaccount value the log keeps (it may be message text)."""

SUBJECT = "data-subject"
"""The actor of an entry the person themself performed (a reply, a form)."""


class IntakeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One consent message or request, as received (raw number, raw time)."""

    tenant: str
    subaccount: str | None
    msisdn: str
    method: Method
    text: str | None = None
    keyword: str | None = None
    verb: Verb | None = None
    occurred_at: str | None = None
    actor: str = SUBJECT
    channel: str = "sms"
    key: str | None = None
    purpose: str | None = None
    notice_version: str | None = None
    evidence: Evidence | None = None
    register_subaccount: bool = False
    """Register an unseen subaccount with default settings (8x8 webhooks name real ones)."""


class IntakeResult(msgspec.Struct, frozen=True, kw_only=True):
    """What intake did: the outcome, the entry (if stored) and notes for the caller."""

    outcome: Outcome
    position: int | None
    duplicate: bool = False
    msisdn: str
    subaccount: str | None
    classification: Classification | None
    entry: Entry | None = None
    notes: tuple[str, ...] = ()
    unresolved: bool = False
    time_replaced: bool = False
    registered: bool = False
    """This request registered its (unseen) subaccount: a configuration entry was appended."""


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """A request classified and resolved into drafts, not yet appended (see ``prepare``)."""

    drafts: tuple[Draft, ...]
    msisdn: str
    classification: Classification | None
    notes: tuple[str, ...]


def record(ledger: ConsentLedger, req: IntakeRequest) -> IntakeResult:
    """Classify, resolve and append one request; see the module guarantees."""
    prepared = prepare(ledger, req)
    if isinstance(prepared, IntakeResult):
        return prepared
    return complete(prepared, ledger.append(prepared.drafts))


def record_each(
    ledger: ConsentLedger, prepared: Sequence[Prepared]
) -> list[IntakeResult | Exception]:
    """Append prepared requests as one group (one commit); each succeeds or fails alone, its
    error in its place."""
    outcomes = ledger.append_each([p.drafts for p in prepared])
    return [
        o if isinstance(o, Exception) else complete(p, o)
        for p, o in zip(prepared, outcomes, strict=True)
    ]


def prepare(ledger: ConsentLedger, req: IntakeRequest) -> Prepared | IntakeResult:
    """The drafts ``req`` appends, or the final result of a ``none`` message (nothing to store);
    raises, before anything is written, for a request that is refused."""
    received = ledger.clock()
    settings = ledger.settings(req.tenant, req.subaccount) if req.subaccount else None
    msisdn = _msisdn(req, settings)
    policy = _policy(req, settings)
    text = req.text if req.text is not None else req.keyword
    found = policy.classify(text) if text is not None else None
    action = _action(req, found)
    if action == "none":
        return IntakeResult(
            outcome="none",
            position=None,
            msisdn=msisdn,
            subaccount=req.subaccount,
            classification=found,
        )
    notes: list[str] = []
    occurred, provider_time = _occurred(req, action, format_time(received))
    if provider_time is not None:
        notes.append(
            f"occurred_at {provider_time} is more than 5 minutes in the future; "
            "the receive time was recorded instead"
        )
    drafts: list[Draft] = []
    unresolved = None
    if settings is None:
        unresolved = _unknown_subaccount(ledger, req, action, drafts, notes)
    revoke_all = action == "opt_out" and ledger.revoke_all(req.tenant)  # only opt-outs ask
    event = _event(req, action, found, policy, unresolved, provider_time, revoke_all)
    drafts.append(
        Draft(
            tenant=req.tenant,
            key=req.key or new_key("entry"),
            subaccount=None if unresolved else req.subaccount,
            msisdn=msisdn,
            occurred_at=occurred,
            event=event,
            evidence=req.evidence,
        )
    )
    return Prepared(
        drafts=tuple(drafts),
        msisdn=msisdn,
        classification=found,
        notes=tuple(notes),
    )


def complete(prepared: Prepared, results: Sequence[Appended]) -> IntakeResult:
    """The result of a prepared request from what appending its drafts did (a repeat answers
    the original entry, without this request's notes)."""
    appended = results[-1]
    entry = appended.stored.entry
    return IntakeResult(
        outcome=OUTCOME_OF_TYPE.get(entry.type, "none"),
        position=appended.position,
        duplicate=appended.duplicate,
        msisdn=entry.msisdn or prepared.msisdn,
        subaccount=entry.subaccount,
        classification=prepared.classification,
        entry=entry,
        notes=prepared.notes if not appended.duplicate else (),
        unresolved=isinstance(entry.event, ConsentRevoked)
        and entry.event.unresolved_subaccount is not None,
        time_replaced=isinstance(entry.event, ConsentRevoked)
        and entry.event.provider_time is not None,
        registered=len(results) > 1 and not results[0].duplicate,
    )


def _policy(req: IntakeRequest, settings: SubaccountSettings | None) -> Policy:
    """The subaccount's policy; a subaccount registered by this request starts at version 1."""
    if settings is not None:
        return settings.policy
    if req.register_subaccount and req.subaccount and is_subaccount_id(req.subaccount):
        return Policy(id=req.subaccount)
    return Policy()


def _msisdn(req: IntakeRequest, settings: SubaccountSettings | None) -> str:
    return to_e164(req.msisdn, settings.default_region if settings else None)


def _action(req: IntakeRequest, found: Classification | None) -> str:
    if (
        req.verb in ("opt_in", "help")
        and found is not None
        and found.action
        in (
            "opt_out",
            "review",
        )
    ):
        raise InvalidInput(
            f"refusing {req.verb.replace('_', '-')} whose text reads as an opt-out "
            f"({found.action}, keyword {found.keyword!r}); record it as an opt-out instead"
        )
    if req.verb is not None:
        return req.verb
    return found.action if found is not None else "none"


def _occurred(req: IntakeRequest, action: str, received: str) -> tuple[str, str | None]:
    if req.occurred_at is None:
        return received, None
    occurred = format_time(parse_time(req.occurred_at))
    if parse_time(occurred) - parse_time(received) <= FUTURE_TOLERANCE:
        return occurred, None
    if action == "opt_in":
        raise InvalidInput(
            f"occurred_at {occurred} is more than 5 minutes in the future; "
            "an opt-in with a future time is refused"
        )
    return received, occurred


def _unknown_subaccount(
    ledger: ConsentLedger, req: IntakeRequest, action: str, drafts: list[Draft], notes: list[str]
) -> str | None:
    """Register, resolve as tenant-wide, or refuse a request naming an unknown subaccount."""
    name = req.subaccount
    if name is not None and req.register_subaccount and is_subaccount_id(name):
        drafts.append(
            ledger.subaccount_draft(
                req.tenant,
                name,
                None,
                actor=SUBJECT if req.actor == SUBJECT else req.actor,
                method=req.method,
                key=f"subaccount-registered:{name}",
            )
        )
        notes.append(f"subaccount {name!r} was new and has been registered with default settings")
        return None
    if action != "opt_out":
        raise UnknownSubaccount(
            f"subaccount {name!r} is not known; register it first "
            f"(PUT /v1/subaccounts/{{id}}) — a {action.replace('_', '-')} is never guessed"
        )
    given = (name or "")[:UNRESOLVED_MAX]  # the log keeps a short, bounded copy
    hint = ""
    if given and Policy().classify(given).action != "none":
        hint = (
            " It looks like a keyword: the Automation Builder HTTP step probably sends "
            "{{data.payload.content.text}} as subaccount; send {{data.payload.subAccountId}} "
            "as subaccount and {{data.payload.body}} as text."
        )
    notes.append(
        f"subaccount {given!r} is not known, so the opt-out was applied to every subaccount of "
        f"the tenant and queued for review.{hint}"
    )
    return given


def _event(
    req: IntakeRequest,
    action: str,
    found: Classification | None,
    policy: Policy,
    unresolved: str | None,
    provider_time: str | None,
    revoke_all: bool,
) -> Event:
    agrees = found is not None and found.action in (action, "review")
    keyword = found.keyword if agrees and found is not None else _keyword(req)
    match = found.match if agrees and found is not None else None
    kw, match, name = keyword, match, policy.name
    ch, method, actor = req.channel, req.method, req.actor
    if action == "opt_out":
        tenant_wide = (found is not None and found.scope == "tenant" and agrees) or revoke_all
        return ConsentRevoked(
            scope="tenant" if tenant_wide or unresolved is not None else "subaccount",
            keyword=kw,
            match=match,
            policy=name,
            channel=ch,
            method=method,
            actor=actor,
            purpose=req.purpose,
            notice_version=req.notice_version,
            unresolved_subaccount=unresolved,
            provider_time=provider_time,
            revoke_all=revoke_all and not (found is not None and found.scope == "tenant"),
        )
    if action == "opt_in":
        return ConsentGranted(
            scope="subaccount",
            keyword=kw,
            match=match,
            policy=name,
            channel=ch,
            method=method,
            actor=actor,
            purpose=req.purpose,
            notice_version=req.notice_version,
        )
    if action == "help":
        return HelpRequested(
            keyword=kw, match=match, policy=name, channel=ch, method=method, actor=actor
        )
    return ReviewFlagged(
        keyword=kw,
        match=match,
        policy=name,
        channel=ch,
        method=method,
        actor=actor,
        reason=_review_reason(found),
    )


def _keyword(req: IntakeRequest) -> str | None:
    return req.keyword.strip().upper()[:64] if req.keyword and req.keyword.strip() else None


def _review_reason(found: Classification | None) -> str:
    word = found.keyword if found else None
    return (
        f"the message contains the opt-out keyword {word} but is not clearly a revocation"
        if word
        else "flagged for review"
    )
