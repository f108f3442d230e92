"""'May I send?': decisions for one number or many, now or at any (valid time, known-at) pair.

Guarantee: the state of (subaccount S, msisdn m) at valid time V as known at position P is
decided by the latest consent fact by occurred time (ties by position) among m's facts with
position <= P, not retracted by P, occurred <= V, whose scope is S or tenant-wide. No such fact
is ``unknown``, allowed or not by S's ``unknown`` setting in force then (allow by default).
The queries that find the deciding fact belong to the read model (``projections.read_model``);
the types and the allow rule, shared by every adapter and the reference fold, live here.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from projections.config import SubaccountSettings

State = Literal["opted_out", "opted_in", "unknown"]

Fact = tuple[int, str, str, str, str | None, str, str]
"""(position, event_id, type, occurred_at, keyword, state, scope key) of the deciding fact."""


class DecidedBy(msgspec.Struct, frozen=True):
    """The entry that decided a state."""

    position: int
    event_id: str
    type: str
    occurred_at: str
    keyword: str | None


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to "may I send to this number from this subaccount?"."""

    allowed: bool
    state: State
    reason: str
    decided_by: DecidedBy | None
    subaccount_known: bool
    at: str
    known_at: int


class BulkStates(msgspec.Struct, frozen=True):
    """Bulk answers without the per-number details: the state of every number that has a
    deciding fact (the others are ``unknown``) and the subaccount's ``unknown`` rule."""

    states: dict[str, State]
    unknown_allowed: bool
    subaccount_known: bool

    def allowed(self, msisdn: str) -> tuple[bool, State]:
        """Whether ``msisdn`` may be sent to, and its state (exactly as ``decide`` says)."""
        state = self.states.get(msisdn, "unknown")
        return (state == "opted_in" if state != "unknown" else self.unknown_allowed), state


class UnknownRule(msgspec.Struct, frozen=True):
    """How a number without a deciding fact is answered: ``allow`` (the subaccount's
    ``unknown`` setting in force then, allow by default) and whether the subaccount is known."""

    allow: bool
    known: bool


def unknown_rule(
    known: SubaccountSettings | None, in_force: SubaccountSettings | None
) -> UnknownRule:
    """The rule given the subaccount's settings as known at the position (any valid time) and
    those in force at the valid time asked about."""
    return UnknownRule(
        allow=in_force is None or in_force.unknown == "allow", known=known is not None
    )


def decision(row: Fact | None, unknown: UnknownRule, at: str, known_at: int) -> Decision:
    """The decision given the deciding fact (``None``: no fact decides) and the ``unknown``
    rule: the one allow rule, shared by every adapter and the reference fold."""
    if row is None:
        why = (
            "no consent entry for this number; the subaccount sends to numbers without one "
            "(suppression-list mode)"
            if unknown.allow
            else "no consent entry for this number; the subaccount requires express opt-in "
            "(unknown: deny)"
        )
        return Decision(
            allowed=unknown.allow,
            state="unknown",
            reason=why,
            decided_by=None,
            subaccount_known=unknown.known,
            at=at,
            known_at=known_at,
        )
    position, event_id, type_, occurred_at, keyword, state, scope = row
    by = DecidedBy(
        int(str(position)),
        str(event_id),
        str(type_),
        str(occurred_at),
        None if keyword is None else str(keyword),
    )
    verb = "opted out" if state == "opted_out" else "opted in"
    where = "for every subaccount of the tenant" if scope == "" else "for this subaccount"
    how = f" by {by.keyword}" if by.keyword else ""
    reason = f"{verb}{how} {where} at {by.occurred_at} (position {by.position})"
    return Decision(
        allowed=state == "opted_in",
        state="opted_out" if state == "opted_out" else "opted_in",
        reason=reason,
        decided_by=by,
        subaccount_known=unknown.known,
        at=at,
        known_at=known_at,
    )
