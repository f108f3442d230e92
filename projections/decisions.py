"""'May I send?': decisions for one number or many, now or at any (valid time, known-at) pair.

Guarantee: the state of (subaccount S, msisdn m) at valid time V as known at position P is
decided by the latest consent fact by occurred time (ties by position) among m's facts with
position <= P, not retracted by P, occurred <= V, whose scope is S or tenant-wide. No such fact
is ``unknown``, allowed or not by S's ``unknown`` setting in force then (allow by default).
Bulk decisions run as one query, whatever the number of msisdns: as known at the consent
projection's position (the log head) they read ``consent_current`` and fall back to the full
bitemporal query, for the numbers concerned, only where a current fact is dated after the valid
time asked about; as known at an earlier position they use the full query.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Literal

import msgspec

from ledger.sqlite.store import head_of
from projections.config import subaccount_settings

State = Literal["opted_out", "opted_in", "unknown"]

_FACT = (
    "SELECT g.position FROM consent_facts g WHERE g.tenant = :tenant AND g.msisdn = {msisdn} "
    "AND g.scope IN (:subaccount, '') AND g.position <= :position "
    "AND (g.retracted_by IS NULL OR g.retracted_by > :position) AND g.occurred_at <= :at "
    "ORDER BY g.occurred_at DESC, g.position DESC LIMIT 1"
)
_ROW = "f.position, f.event_id, f.type, f.occurred_at, f.keyword, f.state, f.scope"
_CURRENT = (
    "SELECT msisdn, occurred_at, position, state FROM consent_current WHERE tenant = ? "
    "AND msisdn IN (SELECT value FROM json_each(?)) AND +scope IN (?, '')"
)


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
        f"SELECT {_ROW} FROM consent_facts f WHERE f.position = ({_FACT.format(msisdn=':msisdn')})",  # noqa: S608
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
    """Decisions for many E.164 numbers at once; keyed by msisdn."""
    distinct = list(dict.fromkeys(msisdns))
    found = deciding_facts(conn, tenant, subaccount, distinct, at, known_at)
    rows = conn.execute(
        f"SELECT {_ROW} FROM consent_facts f WHERE f.position IN (SELECT value FROM json_each(?))",  # noqa: S608
        (_json([position for position, _ in found.values()]),),
    )
    by_position = {r[0]: r for r in rows}
    unknown = _unknown_rule(conn, tenant, subaccount, at, known_at)
    return {
        m: _decision(by_position[found[m][0]] if m in found else None, unknown, at, known_at)
        for m in distinct
    }


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


def states_many(
    conn: sqlite3.Connection,
    tenant: str,
    subaccount: str,
    msisdns: Sequence[str],
    at: str,
    known_at: int,
) -> BulkStates:
    """The states ``decide_many`` would give (allowed and state, not who decided or why)."""
    found = deciding_facts(conn, tenant, subaccount, msisdns, at, known_at)
    unknown = _unknown_rule(conn, tenant, subaccount, at, known_at)
    states: dict[str, State] = {m: state for m, (_, state) in found.items()}
    return BulkStates(states, unknown.allow, unknown.known)


def deciding_facts(
    conn: sqlite3.Connection,
    tenant: str,
    subaccount: str,
    msisdns: Sequence[str],
    at: str,
    known_at: int,
) -> dict[str, tuple[int, State]]:
    """(position, state) of the fact deciding each number that has one (the module rule)."""
    if not _current_is_exact(conn, known_at):
        return _full(conn, tenant, subaccount, msisdns, at, known_at)
    best: dict[str, tuple[str, int, State]] = {}
    later: set[str] = set()  # a current fact dated after ``at``: the full query must decide
    rows = conn.execute(_CURRENT, (tenant, _json(msisdns), subaccount))
    for msisdn, occurred_at, position, state in rows:
        if occurred_at > at:
            later.add(msisdn)
            continue
        seen = best.get(msisdn)
        if seen is None or (occurred_at, position) > seen[:2]:
            best[msisdn] = (occurred_at, position, state)
    found = {m: (position, state) for m, (_, position, state) in best.items() if m not in later}
    if later:
        found.update(_full(conn, tenant, subaccount, sorted(later), at, known_at))
    return found


def _json(values: Sequence[object]) -> str:
    """A JSON array for ``json_each`` (msgspec: several times faster than ``json.dumps``)."""
    return _ENCODE(list(values)).decode()


_ENCODE = msgspec.json.Encoder().encode


def _current_is_exact(conn: sqlite3.Connection, known_at: int) -> bool:
    """Whether ``consent_current`` holds the latest facts as known at ``known_at``: it has
    applied the log up to a position at or before it."""
    row = conn.execute("SELECT position FROM projection_positions WHERE name = 'consent'")
    applied = row.fetchone()
    return applied is not None and known_at >= applied[0]


def _full(
    conn: sqlite3.Connection,
    tenant: str,
    subaccount: str,
    msisdns: Sequence[str],
    at: str,
    known_at: int,
) -> dict[str, tuple[int, State]]:
    """The full bitemporal query (``_FACT``) for each number."""
    rows = conn.execute(
        "SELECT j.value, f.position, f.state FROM json_each(:numbers) j "  # noqa: S608
        f"JOIN consent_facts f ON f.position = ({_FACT.format(msisdn='j.value')})",
        {
            "tenant": tenant,
            "subaccount": subaccount,
            "numbers": _json(msisdns),
            "at": at,
            "position": known_at,
        },
    )
    return {m: (position, state) for m, position, state in rows}


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
    """The last log position recorded at or before ``recorded_at`` (0 if none).

    A binary search over positions (O(log n) primary-key look-ups): ``recorded_at`` never
    decreases with position (the store's guarantee, checked by ``verify``) and positions are
    dense, so the log needs no index by recorded time. Consistent without a read transaction:
    the rows at or below the head read first never change.
    """
    lo = 0  # 0, or a position recorded at or before ``recorded_at``
    hi = head_of(conn)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        row = conn.execute("SELECT recorded_at FROM log WHERE position = ?", (mid,)).fetchone()
        if row[0] <= recorded_at:
            lo = mid
        else:
            hi = mid - 1
    return lo
