"""Consent intervals: the valid-time timeline of (subaccount, msisdn) as known at a position.

Guarantee: intervals are disjoint, ordered, ``from`` inclusive and ``to`` exclusive (``None`` =
open), and at every valid time V inside an interval the decision (``projections.decisions``) names
that interval's state and deciding position. Before the first interval the state is unknown.
"""

from __future__ import annotations

import sqlite3

import msgspec

from projections.decisions import State


class Interval(msgspec.Struct, frozen=True, rename={"from_": "from"}):
    """One stretch of valid time during which one entry decides the state."""

    from_: str
    to: str | None
    state: State
    position: int
    scope: str


def intervals(
    conn: sqlite3.Connection, tenant: str, subaccount: str, msisdn: str, known_at: int
) -> list[Interval]:
    """The consent intervals of (subaccount, msisdn) as known at position ``known_at``."""
    rows = conn.execute(
        "SELECT position, occurred_at, state, scope FROM consent_facts WHERE tenant = ? "
        "AND msisdn = ? AND scope IN (?, '') AND position <= ? "
        "AND (retracted_by IS NULL OR retracted_by > ?) ORDER BY occurred_at, position",
        (tenant, msisdn, subaccount, known_at, known_at),
    ).fetchall()
    out: list[Interval] = []
    for i, (position, occurred, state, scope) in enumerate(rows):
        following = rows[i + 1][1] if i + 1 < len(rows) else None
        if following == occurred:
            continue  # a later position at the same occurred time decides from this instant
        out.append(
            Interval(
                occurred, following, state, position, "tenant" if scope == "" else "subaccount"
            )
        )
    return out
