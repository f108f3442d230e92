"""The review queue: messages flagged for a person, opt-outs with an unresolved subaccount, and
opt-outs to check (``check``: recorded and suppressing, but their key named another request or
their text reads as another action).

Guarantee: an item is open until a ``review.resolved`` entry or a retraction closes it; an item
can be closed once (a second resolution is refused and nothing is written).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from ledger.errors import NotFound
from ledger.events import (
    ConsentRevoked,
    EntryRetracted,
    Event,
    ReviewFlagged,
    ReviewResolved,
)
from ledger.store import Committed
from projections.positions import set_position


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


class ReviewProjector:
    """Keeps ``review_items`` in step with the log."""

    name = "review"

    def apply(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """Open items for flags and unresolved opt-outs; close them on resolution/retraction."""
        for item in items:
            entry, event = item.entry, item.entry.event
            opened = _opens(event, entry.subaccount)
            if opened is not None:
                kind, subaccount, keyword = opened
                conn.execute(
                    "INSERT INTO review_items (position, tenant, kind, subaccount, msisdn, "
                    "keyword, occurred_at, recorded_at) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        entry.position,
                        entry.tenant,
                        kind,
                        subaccount,
                        entry.msisdn,
                        keyword,
                        entry.occurred_at,
                        entry.recorded_at,
                    ),
                )
            elif isinstance(event, ReviewResolved):
                _close(conn, entry.tenant, event.position, entry.position, event.action)
            elif isinstance(event, EntryRetracted):
                conn.execute(
                    "UPDATE review_items SET closed_by = ?, closed_how = 'retracted' "
                    "WHERE position = ? AND closed_by IS NULL",
                    (entry.position, event.position),
                )
        set_position(conn, self.name, items[-1].stored.position)

    def reset(self, conn: sqlite3.Connection) -> None:
        """Drop every item."""
        conn.execute("DELETE FROM review_items")
        set_position(conn, self.name, 0)


def _opens(event: Event, subaccount: str | None) -> tuple[str, str | None, str | None] | None:
    """(kind, subaccount, keyword) of the review item ``event`` opens, if it opens one."""
    if isinstance(event, ReviewFlagged):
        return "flagged", subaccount, event.keyword
    if isinstance(event, ConsentRevoked) and event.unresolved_subaccount is not None:
        return "unresolved", event.unresolved_subaccount, event.keyword
    if isinstance(event, ConsentRevoked) and event.flagged is not None:
        return "check", subaccount, event.keyword
    return None


def _close(conn: sqlite3.Connection, tenant: str, target: int, by: int, how: str) -> None:
    cur = conn.execute(
        "UPDATE review_items SET closed_by = ?, closed_how = ? "
        "WHERE position = ? AND tenant = ? AND closed_by IS NULL",
        (by, how, target, tenant),
    )
    if cur.rowcount == 0:
        raise NotFound(f"there is no open review item at position {target}")


_COLUMNS = (
    "position, kind, subaccount, msisdn, keyword, occurred_at, recorded_at, closed_by, closed_how"
)


def review_item(conn: sqlite3.Connection, tenant: str, position: int) -> ReviewItem | None:
    """The review item at ``position`` of ``tenant``, open or closed."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM review_items WHERE tenant = ? AND position = ?",  # noqa: S608
        (tenant, position),
    ).fetchone()
    return None if row is None else _item(row)


def open_items(
    conn: sqlite3.Connection, tenant: str, *, after: int = 0, limit: int = 1000
) -> list[ReviewItem]:
    """Up to ``limit`` open review items of ``tenant`` with position > ``after``, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM review_items WHERE tenant = ? AND closed_by IS NULL "  # noqa: S608
        "AND position > ? ORDER BY position LIMIT ?",
        (tenant, after, limit),
    ).fetchall()
    return [_item(r) for r in rows]


def backlog(conn: sqlite3.Connection) -> int:
    """Open review items across all tenants (for metrics)."""
    return int(
        conn.execute("SELECT count(*) FROM review_items WHERE closed_by IS NULL").fetchone()[0]
    )


def _item(row: tuple[object, ...]) -> ReviewItem:
    names = [c.strip() for c in _COLUMNS.split(",")]
    return msgspec.convert(dict(zip(names, row, strict=True)), ReviewItem)
