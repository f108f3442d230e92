"""'May I send?': decisions for one number or many, now or at any (valid time, known-at) pair.

Guarantee: the state of (subaccount S, msisdn m) at valid time V as known at position P is
decided by the latest consent fact by occurred time (ties by position) among m's facts with
position <= P, not retracted by P, occurred <= V, whose scope is S or tenant-wide. No such fact
is ``unknown``, allowed or not by S's ``unknown`` setting in force then (allow by default).
Bulk decisions run as one query, whatever the number of msisdns.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Literal

import msgspec

from projections.config import subaccount_settings

State = Literal["opted_out", "opted_in", "unknown"]

_FACT = (
    "SELECT g.position FROM consent_facts g WHERE g.tenant = :tenant AND g.msisdn = {msisdn} "
    "AND g.scope IN (:subaccount, '') AND g.position <= :position "
    "AND (g.retracted_by IS NULL OR g.retracted_by > :position) AND g.occurred_at <= :at "
    "ORDER BY g.occurred_at DESC, g.position DESC LIMIT 1"
)
_ROW = "f.position, f.event_id, f.type, f.occurred_at, f.keyword, f.state, f.scope"


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


def decide(
    conn: sqlite3.Connection, tenant: str, subaccount: str, msisdn: str, at: str, known_at: int
) -> Decision:
    """The decision for one number (``conn`` should be inside a read snapshot)."""
    row = conn.execute(
        f"SELECT {_ROW} FROM consent_facts f WHERE f.position = ({_FACT.format(msisdn=':msisdn')})",
        {
            "tenant": tenant,
            "subaccount": subaccount,
            "msisdn": msisdn,
            "at": at,
            "position": known_at,
        },
    ).fetchone()
    unknown = _unknown_rule(conn, tenant, subaccount, at, known_at)
    return _decision(row, unknown, at, known_at)


def decide_many(
    conn: sqlite3.Connection,
    tenant: str,
    subaccount: str,
    msisdns: Sequence[str],
    at: str,
    known_at: int,
) -> dict[str, Decision]:
    """Decisions for many E.164 numbers at once (one query); keyed by msisdn."""
    distinct = list(dict.fromkeys(msisdns))
    rows = conn.execute(
        f"SELECT j.value, {_ROW} FROM json_each(:numbers) j "
        f"LEFT JOIN consent_facts f ON f.position = ({_FACT.format(msisdn='j.value')})",
        {
            "tenant": tenant,
            "subaccount": subaccount,
            "numbers": json.dumps(distinct),
            "at": at,
            "position": known_at,
        },
    ).fetchall()
    unknown = _unknown_rule(conn, tenant, subaccount, at, known_at)
    return {
        r[0]: _decision(r[1:] if r[1] is not None else None, unknown, at, known_at) for r in rows
    }


class _UnknownRule(msgspec.Struct, frozen=True):
    allow: bool
    known: bool


def _unknown_rule(
    conn: sqlite3.Connection, tenant: str, subaccount: str, at: str, known_at: int
) -> _UnknownRule:
    known = subaccount_settings(conn, tenant, subaccount, position=known_at) is not None
    settings = subaccount_settings(conn, tenant, subaccount, position=known_at, at=at)
    return _UnknownRule(allow=settings is None or settings.unknown == "allow", known=known)


def _decision(
    row: Sequence[object] | None, unknown: _UnknownRule, at: str, known_at: int
) -> Decision:
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


def position_known_at(conn: sqlite3.Connection, recorded_at: str) -> int:
    """The last log position recorded at or before ``recorded_at`` (0 if none)."""
    row = conn.execute(
        "SELECT coalesce(max(position), 0) FROM log WHERE recorded_at <= ?", (recorded_at,)
    ).fetchone()
    return int(row[0])
