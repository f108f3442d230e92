"""JSON shapes shared by the HTTP API and the CLI."""

from __future__ import annotations

from typing import Literal

import msgspec

from projections.decisions import DecidedBy, Decision, State
from projections.known_at import KnownAt


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
    """The ``known_at`` asked for (a position, or a canonical time), ``None`` for now."""
    log_position: int
    """The log position the answer reflects."""
    known_at_note: str | None = None
    """Set when the answer is not as of ``known_at``: a time in the future is answered as
    known now."""


def decision_view(
    decision: Decision, msisdn: str, subaccount: str, known: KnownAt | None = None
) -> DecisionView:
    """Shape a projection decision for output (``known``: the ``known_at`` it answers)."""
    return DecisionView(
        allowed=decision.allowed,
        state=decision.state,
        msisdn=msisdn,
        subaccount=subaccount,
        subaccount_known=decision.subaccount_known,
        reason=decision.reason,
        decided_by=decision.decided_by,
        at=decision.at,
        known_at=known.asked if known else None,
        log_position=decision.known_at,
        known_at_note=known.note if known else None,
    )


Format = Literal["json", "csv"]
