"""JSON shapes shared by the HTTP API and the CLI."""

from __future__ import annotations

from typing import Literal

import msgspec

from projections.decisions import DecidedBy, Decision, State


class DecisionView(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to "may I send?" for one number (HTTP and CLI)."""

    allowed: bool
    state: State
    msisdn: str
    subaccount: str
    subaccount_known: bool
    reason: str
    decided_by: DecidedBy | None
    at: str
    known_at: str | int | None
    log_position: int


def decision_view(
    decision: Decision, msisdn: str, subaccount: str, known_at: str | int | None
) -> DecisionView:
    """Shape a projection decision for output."""
    return DecisionView(
        allowed=decision.allowed,
        state=decision.state,
        msisdn=msisdn,
        subaccount=subaccount,
        subaccount_known=decision.subaccount_known,
        reason=decision.reason,
        decided_by=decision.decided_by,
        at=decision.at,
        known_at=known_at,
        log_position=decision.known_at,
    )


Format = Literal["json", "csv"]
