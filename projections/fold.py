"""Consent decisions and timelines folded straight from decoded log entries (no database).

Guarantees: for any log, ``decision_from_entries(log entries, …)`` equals what
``projections.decisions.decide`` answers on the SQL projection of that log for the same
question, field for field (reason text included), and ``timeline_from_entries`` equals
``projections.timeline.intervals``; a property test holds them to it. Only the entries the
question depends on need be given (see ``relevance``): the number's entries that bear on the
subaccount, the retractions targeting them and the subaccount's configuration entries.

The rule is docs/consent-rules.md §7, literally. The state of (subaccount S, msisdn m) at valid time
V as known at log position P is decided by the latest consent entry by occurred time (ties by
position) among m's opt-out and opt-in entries of the tenant with position ≤ P, occurred ≤ V, whose
scope is S or tenant-wide, and that no retraction with position ≤ P removed. With no such entry the
state is ``unknown``: allowed unless S's latest ``subaccount.configured`` entry (position ≤ P,
occurred ≤ V; latest by occurred time, ties by position) says ``unknown: deny``.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Literal

from ledger.entries import Entry
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    EntryRetracted,
    ReviewResolved,
    SubaccountConfigured,
    TenantConfigured,
)
from ledger.timefmt import normalize_time
from projections.consent import TENANT_SCOPE
from projections.decisions import Decision, State, UnknownRule, decision
from projections.timeline import Interval

Role = Literal["number", "targeting", "configuration"]
"""Why an entry belongs to the evidence about (subaccount, msisdn): it is about the number and
bears on the subaccount, it retracts or resolves such an entry, or it configures the
subaccount or the tenant."""

_Fact = tuple[int, str, str, str, str | None, State, str]
"""(position, event_id, type, occurred_at, keyword, state, scope key) of one consent entry."""


def decision_from_entries(
    entries: Sequence[Entry], tenant: str, subaccount: str, msisdn: str, at: str, known_at: int
) -> Decision:
    """The full decision for (``subaccount``, E.164 ``msisdn``) at valid time ``at`` as known at
    log position ``known_at``, from the entries alone (``at`` is normalised to canonical form)."""
    when = normalize_time(at)
    facts = [f for f in _facts(entries, tenant, subaccount, msisdn, known_at) if f[3] <= when]
    best = max(facts, key=lambda f: (f[3], f[0]), default=None)
    return decision(
        best, _unknown_rule(entries, tenant, subaccount, when, known_at), when, known_at
    )


def decide_from_entries(
    entries: Sequence[Entry], tenant: str, subaccount: str, msisdn: str, at: str, known_at: int
) -> tuple[bool, State, int | None]:
    """``(allowed, state, deciding position or None)`` (see ``decision_from_entries``)."""
    found = decision_from_entries(entries, tenant, subaccount, msisdn, at, known_at)
    by = found.decided_by.position if found.decided_by is not None else None
    return found.allowed, found.state, by


def timeline_from_entries(
    entries: Sequence[Entry], tenant: str, subaccount: str, msisdn: str, known_at: int
) -> list[Interval]:
    """The consent intervals of (``subaccount``, ``msisdn``) as known at ``known_at``: ordered,
    disjoint, ``from`` inclusive, ``to`` exclusive (``None`` = open)."""
    facts = sorted(
        _facts(entries, tenant, subaccount, msisdn, known_at), key=lambda f: (f[3], f[0])
    )
    out: list[Interval] = []
    for i, (position, _, _, occurred, _, state, scope) in enumerate(facts):
        following = facts[i + 1][3] if i + 1 < len(facts) else None
        if following == occurred:
            continue  # a later position at the same occurred time decides from this instant
        kind = "tenant" if scope == TENANT_SCOPE else "subaccount"
        out.append(Interval(occurred, following, state, position, kind))
    return out


def relevance(
    entry: Entry, tenant: str, subaccount: str, msisdn: str, number_positions: Container[int]
) -> Role | None:
    """Why ``entry`` belongs to the evidence about (``subaccount``, ``msisdn``) of ``tenant``,
    or ``None`` if it does not. ``number_positions`` are the positions whose role is
    ``number`` (the targets a retraction or review resolution may point at)."""
    if entry.tenant != tenant:
        return None
    event = entry.event
    if isinstance(event, TenantConfigured):
        return "configuration"
    if isinstance(event, SubaccountConfigured):
        return "configuration" if entry.subaccount == subaccount else None
    if entry.msisdn == msisdn and bears_on(entry, subaccount):
        return "number"
    if isinstance(event, EntryRetracted | ReviewResolved) and event.position in number_positions:
        return "targeting"
    return None


def bears_on(entry: Entry, subaccount: str) -> bool:
    """Whether an entry about a number bears on ``subaccount``: the subaccount's own, one whose
    subaccount was never resolved, or a tenant-wide opt-out or opt-in."""
    if entry.subaccount is None or entry.subaccount == subaccount:
        return True
    event = entry.event
    return isinstance(event, ConsentRevoked | ConsentGranted) and event.scope == "tenant"


# -- internals ----------------------------------------------------------------------------------


def _facts(
    entries: Sequence[Entry], tenant: str, subaccount: str, msisdn: str, known_at: int
) -> list[_Fact]:
    """Consent facts of ``msisdn`` for ``subaccount`` known and not retracted at ``known_at``."""
    visible = [e for e in entries if e.tenant == tenant and e.position <= known_at]
    retracted = {
        e.event.position
        for e in visible
        if isinstance(e.event, EntryRetracted) and e.event.position < e.position
    }
    facts: list[_Fact] = []
    for e in visible:
        event = e.event
        if not isinstance(event, ConsentRevoked | ConsentGranted) or not e.msisdn:
            continue
        if e.msisdn != msisdn or e.position in retracted:
            continue
        scope = TENANT_SCOPE if event.scope == "tenant" else (e.subaccount or TENANT_SCOPE)
        if scope not in (subaccount, TENANT_SCOPE):
            continue
        state: State = "opted_out" if isinstance(event, ConsentRevoked) else "opted_in"
        facts.append((e.position, e.event_id, e.type, e.occurred_at, event.keyword, state, scope))
    return facts


def _unknown_rule(
    entries: Sequence[Entry], tenant: str, subaccount: str, at: str, known_at: int
) -> UnknownRule:
    configs = [
        e
        for e in entries
        if isinstance(e.event, SubaccountConfigured)
        and e.tenant == tenant
        and e.subaccount == subaccount
        and e.position <= known_at
    ]
    in_force = [e for e in configs if e.occurred_at <= at]
    latest = max(in_force, key=lambda e: (e.occurred_at, e.position), default=None)
    allow = latest is None or (
        isinstance(latest.event, SubaccountConfigured) and latest.event.unknown == "allow"
    )
    return UnknownRule(allow=allow, known=bool(configs))
