"""The review queue: messages flagged for a person, opt-outs with an unresolved subaccount, and
opt-outs to check (``check``: recorded and suppressing, but their key named another request or
their text reads as another action), and replies whose outcome is unknown (``reply``: never
sent again; a delivery receipt settles them, or a person dismisses them).

Guarantee: an item is open until a ``review.resolved`` entry, a retraction or (``reply``) a
settling receipt closes it; an item
can be closed once (a second resolution is refused and nothing is written).
"""

from __future__ import annotations

import msgspec

from ledger.events import ConsentRevoked, Event, ReplyUncertain, ReviewFlagged


class ReviewItem(msgspec.Struct, frozen=True, kw_only=True):
    """One item in the review queue."""

    position: int
    kind: str
    subaccount: str | None
    msisdn: str | None
    keyword: str | None
    occurred_at: str
    recorded_at: str
    closed_by: int | None
    closed_how: str | None


def opens(event: Event, subaccount: str | None) -> tuple[str, str | None, str | None] | None:
    """(kind, subaccount, keyword) of the review item ``event`` opens, if it opens one."""
    if isinstance(event, ReviewFlagged):
        return "flagged", subaccount, event.keyword
    if isinstance(event, ConsentRevoked) and event.unresolved_subaccount is not None:
        return "unresolved", event.unresolved_subaccount, event.keyword
    if isinstance(event, ConsentRevoked) and event.flagged is not None:
        return "check", subaccount, event.keyword
    if isinstance(event, ReplyUncertain):
        return "reply", subaccount, None
    return None
