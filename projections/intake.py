"""Intake: turn one consent message or request into log entries (docs/consent-rules.md).

Guarantees:
- no STOP is lost: a request that records an opt-out is never refused for its subaccount, its
  ids, its time or its text — an opt-out whose subaccount is absent, no id, or unknown applies
  tenant-wide and is queued for review (a subaccount named by the URL is used when the body's is
  not a known one); only a number that cannot be read refuses it (the caller quarantines it);
- the entry's action follows the request's verb when it names one: an opt-out verb always wins
  (a text that reads as another action flags the opt-out for review); an opt-in or help whose
  text reads as an opt-out is refused; otherwise the keyword policy decides, and without a
  resolved subaccount every opt-out keyword of the tenant's subaccounts counts;
- doubt never re-subscribes: an opt-in or help for an unknown subaccount, with an unreadable or
  future time, or under a key that names another request, is refused;
- an idempotency key never swallows another person's STOP: a key already used for another
  number, text, kind or (not covering) subaccount is no duplicate — the opt-out is recorded
  under a key derived from it and flagged for review (an opt-in so reused is a ``Conflict``);
- a value that is not a well-formed id never enters the signed entry, only its digest;
- the policy, the subaccount and the tenant's ``revoke_all`` an entry was decided by are the
  ones in force when it is appended: a configuration appended in between (by another request,
  or earlier in the same group commit) makes the store refuse the append as ``Stale``, and the
  request is read and decided again;
- a ``none`` message is answered and never stored; every refusal raises before anything is
  written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from ledger.entries import Entry, Evidence, decode_evidence
from ledger.errors import Conflict, InvalidInput, InvalidTime, Stale, UnknownSubaccount
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    Event,
    HelpRequested,
    Method,
    ReviewFlagged,
)
from ledger.keywords import Classification, KeywordChanges, Policy
from ledger.msisdn import to_e164
from ledger.store import Appended, Draft, Unchanged
from ledger.timefmt import FUTURE_TOLERANCE, format_time, parse_time
from projections.config import SubaccountSettings
from projections.eightxeight import replies
from projections.ids import (
    UMID_PREFIX,
    is_subaccount_id,
    key_part,
    new_key,
    reused_key,
    usable_id,
)
from projections.ledger import ConsentLedger

Verb = Literal["opt_out", "opt_in", "help"]
Outcome = Literal["opted_out", "opted_in", "help", "review", "none"]

OUTCOME_OF_TYPE: dict[str, Outcome] = {
    "consent.revoked": "opted_out",
    "consent.granted": "opted_in",
    "help.requested": "help",
    "review.flagged": "review",
}
_TYPE_OF_ACTION = {
    "opt_out": "consent.revoked",
    "opt_in": "consent.granted",
    "help": "help.requested",
    "review": "review.flagged",
}

SUBJECT = "data-subject"
"""The actor of an entry the person themself performed (a reply, a form)."""

CONFIGURATION_TYPES = ("subaccount.configured", "tenant.configured")
"""Entry types that change how a request is decided (policy, region, ``revoke_all``)."""
ATTEMPTS = 5
"""How often a request is decided again when configuration changed under it (``Stale``)."""

TENANT_POLICY_ID = "all-subaccounts"
"""The policy id of a classification made without a resolved subaccount: the default lists plus
every opt-out keyword of the tenant's subaccounts, versioned by the newest setting it uses."""


class IntakeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One consent message or request, as received (raw number, raw time, raw ids)."""

    tenant: str
    subaccount: str | None
    """The subaccount the body named, as received (may be no id, or message text)."""
    msisdn: str
    method: Method
    text: str | None = None
    keyword: str | None = None
    verb: Verb | None = None
    occurred_at: str | None = None
    channel: str = "sms"
    key: str | None = None
    purpose: str | None = None
    notice_version: str | None = None
    evidence: Evidence | None = None
    register_subaccount: bool = False
    """Register an unseen, well-formed subaccount with default settings (8x8 webhooks name
    real ones); never for a subaccount named by the URL."""
    url_subaccount: str | None = None
    """The subaccount the request's URL named (an Automation Builder workflow per subaccount)."""
    recorded_by: str | None = None
    """Who recorded it (``key:<id>``, ``cli:<user>``), set by the server."""
    claimed_actor: str | None = None
    """Who the client said performed it (kept as a claim)."""
    destination: str | None = None
    """The number the person texted (8x8's ``destination``), kept in the entry."""


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
    flagged: str | None = None
    """Why the stored opt-out was queued for a person to check, if it was."""


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """A request classified and resolved into drafts, not yet appended (see ``prepare``)."""

    drafts: tuple[Draft, ...]
    msisdn: str
    classification: Classification | None
    notes: tuple[str, ...]
    text: str | None
    """The message text, to tell a retry from another request under the same key."""
    action: str
    strict: bool
    """A reused key is a ``Conflict`` (an opt-in with a verb) rather than a new entry."""
    occurred_at: str | None
    """The request's own occurred time (canonical; ``None`` when it gave none that could be
    read), to tell a retry from another request under the same key."""
    subaccount: str | None
    """The subaccount as the request named it, for ``strict`` comparisons."""
    request: IntakeRequest
    """The request itself, to decide it again when its configuration changed (``Stale``)."""


def record(ledger: ConsentLedger, req: IntakeRequest) -> IntakeResult:
    """Classify, resolve and append one request; see the module guarantees."""
    for attempt in range(ATTEMPTS):
        prepared = prepare(ledger, req)
        if isinstance(prepared, IntakeResult):
            return prepared
        try:
            results = ledger.append(prepared.drafts)
        except Stale:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        again = _again(ledger, prepared, results)
        if isinstance(again, Exception):
            raise again
        if again is not None:
            prepared, results = again, ledger.append(again.drafts)
        return complete(prepared, results)
    raise AssertionError("unreachable")  # pragma: no cover


def record_each(
    ledger: ConsentLedger, prepared: Sequence[Prepared]
) -> list[IntakeResult | Exception]:
    """Append prepared requests as one group (one commit); each succeeds or fails alone, its
    error in its place. A request whose key named another request is appended again, under a
    derived key, in one more group."""
    items: list[Prepared] = list(prepared)
    outcomes: list[list[Appended] | Exception | IntakeResult]
    outcomes = list(ledger.append_each([p.drafts for p in items]))
    for _ in range(ATTEMPTS - 1):
        stale = [i for i, o in enumerate(outcomes) if isinstance(o, Stale)]
        if not stale:
            break
        _decide_again(ledger, items, outcomes, stale)
    retry: dict[int, Prepared] = {}
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, Exception | IntakeResult):
            continue
        again = _again(ledger, items[i], outcome)
        if isinstance(again, Exception):
            outcomes[i] = again
        elif again is not None:
            retry[i] = again
    if retry:
        second = ledger.append_each([p.drafts for p in retry.values()])
        for (i, p), outcome in zip(retry.items(), second, strict=True):
            items[i], outcomes[i] = p, outcome
    return [
        o if isinstance(o, Exception | IntakeResult) else complete(p, o)
        for p, o in zip(items, outcomes, strict=True)
    ]


def _decide_again(
    ledger: ConsentLedger,
    items: list[Prepared],
    outcomes: list[list[Appended] | Exception | IntakeResult],
    stale: Sequence[int],
) -> None:
    """Decide the ``stale`` requests again and append them as one more group, in place."""
    redo: list[int] = []
    for i in stale:
        try:
            found = prepare(ledger, items[i].request)
        except Exception as exc:  # refused now (e.g. its subaccount's policy changed)
            outcomes[i] = exc
            continue
        if isinstance(found, IntakeResult):
            outcomes[i] = found
        else:
            items[i] = found
            redo.append(i)
    for i, outcome in zip(redo, ledger.append_each([items[i].drafts for i in redo]), strict=True):
        outcomes[i] = outcome


def prepare(ledger: ConsentLedger, req: IntakeRequest) -> Prepared | IntakeResult:
    """The drafts ``req`` appends, or the final result of a ``none`` message (nothing to store);
    raises, before anything is written, for a request that is refused."""
    received = format_time(ledger.clock())
    read_at = ledger.head()  # before any setting is read: see the module guarantees
    body_name = _subaccount_id(req.subaccount)
    settings = ledger.settings(req.tenant, body_name) if body_name else None
    if settings is None and req.url_subaccount is not None:
        url_name = _subaccount_id(req.url_subaccount)
        settings = ledger.settings(req.tenant, url_name) if url_name else None
    text = _text(req, settings)
    registering = settings is None and _registers(req, body_name)
    policy = _policy(ledger, req, settings, body_name if registering else None)
    found = policy.classify(text) if text is not None else None
    action = _action(req, found)
    msisdn = _msisdn(ledger, req, settings)
    if action == "none":
        return IntakeResult(
            outcome="none",
            position=None,
            msisdn=msisdn,
            subaccount=settings.subaccount if settings else body_name,
            classification=found,
        )
    notes: list[str] = []
    occurred, provider_time = _occurred(req, action, received, notes)
    drafts: list[Draft] = []
    unresolved = None
    subaccount = settings.subaccount if settings else None
    if registering and body_name is not None:
        drafts.append(_registration(ledger, req, body_name, notes))
        subaccount = body_name
    elif settings is None:
        unresolved = _unresolved(req, action, notes)
    revoke_all = action == "opt_out" and ledger.revoke_all(req.tenant)  # only opt-outs ask
    flagged = _disagreement(req, found)
    if flagged is not None:
        notes.append(flagged + "; it was recorded as an opt-out and queued for review")
    event = _event(req, action, found, policy, unresolved, provider_time, revoke_all, flagged)
    event = _round_trip(ledger, req, event, msisdn, subaccount, occurred, received, provider_time)
    drafts.append(
        Draft(
            tenant=req.tenant,
            key=req.key or new_key("entry"),
            subaccount=subaccount,
            msisdn=msisdn,
            occurred_at=occurred,
            event=event,
            evidence=req.evidence,
        )
    )
    guard = Unchanged(tenant=req.tenant, types=CONFIGURATION_TYPES, position=read_at)
    drafts[0] = msgspec.structs.replace(drafts[0], unchanged=guard)  # before the call writes
    return Prepared(
        drafts=tuple(drafts),
        msisdn=msisdn,
        classification=found,
        notes=tuple(notes),
        text=text,
        action=action,
        strict=req.verb == "opt_in",
        occurred_at=_given_time(req),
        subaccount=subaccount or body_name,
        request=req,
    )


def complete(prepared: Prepared, results: Sequence[Appended]) -> IntakeResult:
    """The result of a prepared request from what appending its drafts did (a repeat answers
    the original entry, without this request's notes)."""
    appended = results[-1]
    entry = appended.stored.entry
    event = entry.event
    return IntakeResult(
        outcome=OUTCOME_OF_TYPE.get(entry.type, "none"),
        position=appended.position,
        duplicate=appended.duplicate,
        msisdn=entry.msisdn or prepared.msisdn,
        subaccount=entry.subaccount,
        classification=prepared.classification,
        entry=entry,
        notes=prepared.notes if not appended.duplicate else (),
        unresolved=isinstance(event, ConsentRevoked) and event.unresolved_subaccount is not None,
        time_replaced=isinstance(event, ConsentRevoked) and event.provider_time is not None,
        registered=len(results) > 1 and not results[0].duplicate,
        flagged=event.flagged if isinstance(event, ConsentRevoked) else None,
    )


def _round_trip(
    ledger: ConsentLedger,
    req: IntakeRequest,
    event: Event,
    msisdn: str,
    subaccount: str | None,
    occurred: str,
    received: str,
    provider_time: str | None,
) -> Event:
    """``event`` with what the 8x8 round trip needs (projections.eightxeight.replies): the
    number texted, the reply a live request asks for, and the blacklist mark."""
    if not isinstance(event, ConsentRevoked | ConsentGranted | HelpRequested):
        return event
    destination = replies.destination_of(req.destination)
    changes: dict[str, object] = {}
    if destination is not None:
        changes["destination"] = destination
    umid = req.key is not None and req.key.startswith(UMID_PREFIX)
    given = _given_time(req)
    live = replies.is_live(req.method, umid, given, occurred, received, provider_time is not None)
    if live and req.channel == "sms":  # replies go by SMS, to a person who texted by SMS
        before = ledger.head()

        def entries() -> list[Entry]:
            return [s.entry for s in ledger.store.read_number(req.tenant, msisdn)]

        with ledger.read_model.snapshot() as view:
            wanted = replies.intent(
                view,
                entries,
                tenant=req.tenant,
                action=_ACTION_OF_EVENT[type(event)],
                scope=getattr(event, "scope", None),
                subaccount=subaccount,
                msisdn=msisdn,
                destination=destination,
                occurred=occurred,
                before=before,
            )
        if wanted is not None:
            changes["reply"] = wanted
    if isinstance(event, ConsentRevoked) and event.scope == "tenant":
        sync = replies.blacklist_settings(ledger.read_model, req.tenant)
        if sync is not None and sync.enabled:
            changes["blacklist"] = True
    return msgspec.structs.replace(event, **changes) if changes else event


_ACTION_OF_EVENT = {ConsentRevoked: "opt_out", ConsentGranted: "opt_in", HelpRequested: "help"}


# -- a key that names another request ----------------------------------------------------------
def _again(
    ledger: ConsentLedger, prepared: Prepared, results: Sequence[Appended]
) -> Prepared | Exception | None:
    """What to do when the request's key was already taken: ``None`` for a true repeat (or a
    fresh entry), a ``Conflict`` for a strict request, a refusal for a reused key that would
    re-subscribe, or the request again under a derived key, flagged for review."""
    last = results[-1]
    if not last.duplicate:
        return None
    original = last.stored.entry
    differs = _differences(ledger, prepared, original)
    if not differs:
        return None
    draft = prepared.drafts[-1]
    what = f"{'; '.join(differs)} than the entry at position {original.position}"
    if prepared.strict:
        return Conflict(
            f"the key {draft.key!r} was already used for the entry at position "
            f"{original.position} and this request is different ({'; '.join(differs)}); "
            "use a new key"
        )
    if prepared.action == "opt_in":
        return InvalidInput(f"the message id was already used for another message ({what})")
    reason = f"its key was already used for {what}"
    event = draft.event
    if isinstance(event, ConsentRevoked):
        event = msgspec.structs.replace(event, flagged=event.flagged or f"reused key: {reason}")
    rekeyed = msgspec.structs.replace(
        draft, key=reused_key(draft.key, prepared.msisdn, prepared.text), event=event
    )
    settled = [msgspec.structs.replace(d, unchanged=None) for d in (*prepared.drafts[:-1], rekeyed)]
    return msgspec.structs.replace(
        prepared,
        drafts=tuple(settled),
        notes=(*prepared.notes, f"{reason}: recorded as a new entry and queued for review"),
    )


def _differences(ledger: ConsentLedger, prepared: Prepared, original: Entry) -> list[str]:
    """How the request differs from the entry its key already names (empty: a repeat)."""
    differs = []
    draft = prepared.drafts[-1]
    if original.type != _TYPE_OF_ACTION[prepared.action]:
        differs.append(f"another kind of entry ({original.type})")
    if original.msisdn != prepared.msisdn:
        differs.append("another number")
    if prepared.text is not None and _original_text(ledger, original) not in (None, prepared.text):
        differs.append("another text")
    event = original.event
    times = (original.occurred_at, getattr(event, "provider_time", None))
    if prepared.occurred_at is not None and prepared.occurred_at not in times:
        differs.append("another occurred_at")
    if prepared.strict:
        named = original.subaccount or getattr(event, "unresolved_subaccount", None)
        if named != prepared.subaccount:
            differs.append("another subaccount")
    elif (
        isinstance(event, ConsentRevoked)
        and event.scope == "subaccount"
        and original.subaccount != draft.subaccount
    ):
        differs.append("another subaccount")
    return differs


def _original_text(ledger: ConsentLedger, original: Entry) -> str | None:
    """The text kept in the original entry's evidence (``None`` when none or erased)."""
    _, content = ledger.store.evidence([original.position]).get(original.position, (None, None))
    return decode_evidence(content).text if content is not None else None


# -- resolving the request ---------------------------------------------------------------------
def _subaccount_id(value: str | None) -> str | None:
    """``value`` when it is a usable, well-formed subaccount id."""
    name = usable_id(value)
    return name if name is not None and is_subaccount_id(name) else None


def _registers(req: IntakeRequest, body_name: str | None) -> bool:
    return req.register_subaccount and body_name is not None and req.subaccount == body_name


def _text(req: IntakeRequest, settings: SubaccountSettings | None) -> str | None:
    """The text to classify: the request's own, else a body subaccount value that names no
    known subaccount (the published tutorial puts the message text there)."""
    if req.text is not None:
        return req.text
    given = req.subaccount.strip() if req.subaccount else ""
    names_none = settings is None or settings.subaccount != given
    if req.verb is not None and given and names_none and usable_id(given) is not None:
        return given
    return req.keyword


def _policy(
    ledger: ConsentLedger,
    req: IntakeRequest,
    settings: SubaccountSettings | None,
    registering: str | None,
) -> Policy:
    """The subaccount's policy; one registered by this request starts at version 1; without a
    resolved subaccount, the defaults plus every opt-out keyword of the tenant's subaccounts."""
    if settings is not None:
        return settings.policy
    if registering is not None:
        return Policy(id=registering)
    return tenant_policy(ledger, req.tenant)


def tenant_policy(ledger: ConsentLedger, tenant: str) -> Policy:
    """The policy for a message whose subaccount is not resolved (see ``TENANT_POLICY_ID``)."""
    known = ledger.subaccounts(tenant)
    extra = sorted({k for s in known for k in s.keywords.add.get("opt_out", ())})
    if not extra:
        return Policy()
    version = max(s.position for s in known if s.keywords.add.get("opt_out"))
    return Policy(
        id=TENANT_POLICY_ID, version=version, changes=KeywordChanges(add={"opt_out": extra})
    )


def _msisdn(ledger: ConsentLedger, req: IntakeRequest, settings: SubaccountSettings | None) -> str:
    region = settings.default_region if settings else None
    return to_e164(req.msisdn, region or ledger.tenant_region(req.tenant))


def _action(req: IntakeRequest, found: Classification | None) -> str:
    if (
        req.verb in ("opt_in", "help")
        and found is not None
        and found.action in ("opt_out", "review")
    ):
        raise InvalidInput(
            f"refusing {req.verb.replace('_', '-')} whose text reads as an opt-out "
            f"({found.action}, keyword {found.keyword!r}); record it as an opt-out instead"
        )
    if req.verb is not None:
        return req.verb
    return found.action if found is not None else "none"


def _disagreement(req: IntakeRequest, found: Classification | None) -> str | None:
    """Why an opt-out request should be checked: its text reads as an opt-in or help."""
    if req.verb == "opt_out" and found is not None and found.action in ("opt_in", "help"):
        return f"the text reads as {found.action} (keyword {found.keyword})"
    return None


def _occurred(
    req: IntakeRequest, action: str, received: str, notes: list[str]
) -> tuple[str, str | None]:
    """The occurred time to record and, when a future one was replaced, the original."""
    if req.occurred_at is None:
        return received, None
    try:
        occurred = format_time(parse_time(req.occurred_at))
    except InvalidTime as exc:
        if action == "opt_in":
            raise
        notes.append(f"occurred_at could not be read ({exc}); the receive time was recorded")
        return received, None
    if parse_time(occurred) - parse_time(received) <= FUTURE_TOLERANCE:
        return occurred, None
    if action == "opt_in":
        raise InvalidInput(
            f"occurred_at {occurred} is more than 5 minutes in the future; "
            "an opt-in with a future time is refused"
        )
    notes.append(
        f"occurred_at {occurred} is more than 5 minutes in the future; "
        "the receive time was recorded instead"
    )
    return received, occurred


def _given_time(req: IntakeRequest) -> str | None:
    """The request's own occurred time in canonical form, ``None`` when absent or unreadable."""
    try:
        return format_time(parse_time(req.occurred_at)) if req.occurred_at is not None else None
    except InvalidTime:
        return None


def _registration(ledger: ConsentLedger, req: IntakeRequest, name: str, notes: list[str]) -> Draft:
    notes.append(f"subaccount {name!r} was new and has been registered with default settings")
    return ledger.subaccount_draft(
        req.tenant,
        name,
        None,
        actor=SUBJECT,
        method=req.method,
        key=f"subaccount-registered:{name}",
    )


def _unresolved(req: IntakeRequest, action: str, notes: list[str]) -> str:
    """The unresolved subaccount an opt-out records (a digest when not an id); refuses any
    other action."""
    named = req.url_subaccount if req.url_subaccount is not None else req.subaccount
    shown = usable_id(named)
    if action != "opt_out":
        what = f"subaccount {shown!r} is not known" if shown else "no subaccount is named"
        raise UnknownSubaccount(
            f"{what}; register it first — a {action.replace('_', '-')} is never guessed"
        )
    recorded = "" if shown is None else (shown if is_subaccount_id(shown) else key_part(shown))
    where = " (named by the URL)" if req.url_subaccount is not None else ""
    hint = ""
    if req.url_subaccount is None and shown and Policy().classify(shown).action != "none":
        hint = (
            " It looks like a keyword: the Automation Builder HTTP step probably sends "
            "{{data.payload.content.text}} as subaccount; send {{data.payload.subAccountId}} "
            "as subaccount and {{data.payload.body}} as text."
        )
    what = f"subaccount {shown!r}{where} is not known" if shown else "no subaccount was named"
    notes.append(
        f"{what}, so the opt-out was applied to every subaccount of the tenant and queued for "
        f"review.{hint}"
    )
    return recorded


def _event(
    req: IntakeRequest,
    action: str,
    found: Classification | None,
    policy: Policy,
    unresolved: str | None,
    provider_time: str | None,
    revoke_all: bool,
    flagged: str | None,
) -> Event:
    agrees = found is not None and found.action in (action, "review")
    keyword = found.keyword if agrees and found is not None else _keyword(req)
    match = found.match if agrees and found is not None else None
    common = {
        "keyword": keyword,
        "match": match,
        "policy": policy.name,
        "channel": req.channel,
        "method": req.method,
        "actor": SUBJECT,
        "recorded_by": req.recorded_by,
        "claimed_actor": req.claimed_actor,
    }
    if action == "opt_out":
        keyword_wide = found is not None and found.scope == "tenant" and agrees
        return ConsentRevoked(
            scope="tenant"
            if keyword_wide or revoke_all or unresolved is not None
            else "subaccount",
            purpose=req.purpose,
            notice_version=req.notice_version,
            unresolved_subaccount=unresolved,
            provider_time=provider_time,
            revoke_all=revoke_all and not keyword_wide,
            flagged=flagged,
            **common,  # type: ignore[arg-type]
        )
    if action == "opt_in":
        return ConsentGranted(
            scope="subaccount",
            purpose=req.purpose,
            notice_version=req.notice_version,
            **common,  # type: ignore[arg-type]
        )
    if action == "help":
        return HelpRequested(**common)  # type: ignore[arg-type]
    return ReviewFlagged(reason=_review_reason(found), **common)  # type: ignore[arg-type]


def _keyword(req: IntakeRequest) -> str | None:
    """The client's keyword, when it is one a policy could hold (never free text)."""
    word = req.keyword.strip().upper()[:64] if req.keyword and req.keyword.strip() else None
    return word if word is not None and usable_id(word) is not None else None


def _review_reason(found: Classification | None) -> str:
    word = found.keyword if found else None
    return (
        f"the message contains the opt-out keyword {word} but is not clearly a revocation"
        if word
        else "flagged for review"
    )
