"""Consent intervals: the valid-time timeline of (subaccount, msisdn) as known at a position.

Guarantee: intervals are disjoint, ordered, ``from`` inclusive and ``to`` exclusive (``None`` =
open), and at every valid time V inside an interval the decision (``projections.decisions``) names
that interval's state and deciding position. Before the first interval the state is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from projections.decisions import State


class Interval(msgspec.Struct, frozen=True, rename={"from_": "from"}):
    """One stretch of valid time during which one entry decides the state."""

    from_: str
    to: str | None
    state: State
    position: int
    scope: str


TimelineFact = tuple[int, str, State, str]
"""(position, occurred_at, state, scope key) of one fact in force as known at a position."""


def intervals_from(facts: Sequence[TimelineFact]) -> list[Interval]:
    """The intervals that ``facts`` (of the subaccount and tenant-wide, not retracted as known
    then) give, ordered by occurred time then position."""
    out: list[Interval] = []
    for i, (position, occurred, state, scope) in enumerate(facts):
        following = facts[i + 1][1] if i + 1 < len(facts) else None
        if following == occurred:
            continue  # a later position at the same occurred time decides from this instant
        out.append(
            Interval(
                occurred, following, state, position, "tenant" if scope == "" else "subaccount"
            )
        )
    return out
