"""The SQLite outbox projector and its reads (``projections.eightxeight.outbox``): the
``replies`` table kept in step with the log inside the append transaction.

Guarantee: its rows are a pure function of the log (``opened`` and ``moved`` applied in
position order), so a rebuild gives the rows live appends gave.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from ledger.store import Committed
from projections.eightxeight.outbox import (
    OPEN_STATES,
    OutboxCounts,
    Reply,
    moved,
    opened,
    target,
)

COLUMNS = (
    "position, action, tenant, kind, subaccount, msisdn, event_id, deadline, recorded_at, "
    "state, attempts, retry_at, outcome_position, umid, code"
)
_NAMES = [c.strip() for c in COLUMNS.split(",")]
_INSERT = f"INSERT INTO replies ({COLUMNS}) VALUES ({', '.join('?' * len(_NAMES))})"  # noqa: S608
_OPEN = "state IN ('pending', 'attempted', 'deferred')"
"""The condition of the partial index ``replies_open`` (migration 0011), verbatim."""
assert OPEN_STATES == ("pending", "attempted", "deferred")


class OutboxProjector:
    """Keeps ``replies`` in step with the log."""

    name = "outbox"

    def apply(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """Open rows for entries that ask for a reply or a blacklist push; move them on their
        outcome entries."""
        for item in items:
            entry = item.entry
            for row in opened(entry):
                conn.execute(_INSERT, _values(row))
            found = target(entry.event)
            if found is None:
                continue
            current = _one(conn, *found)
            if current is not None:
                _write(conn, moved(current, entry.event, entry.position))
        if items:
            conn.execute(
                "INSERT INTO projection_positions (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (self.name, items[-1].stored.position),
            )

    def reset(self, conn: sqlite3.Connection) -> None:
        """Drop every row."""
        conn.execute("DELETE FROM replies")
        conn.execute(
            "INSERT INTO projection_positions (name, position) VALUES (?, 0) "
            "ON CONFLICT (name) DO UPDATE SET position = 0",
            (self.name,),
        )


def _values(row: Reply) -> tuple[object, ...]:
    return tuple(getattr(row, name) for name in _NAMES)


def _write(conn: sqlite3.Connection, row: Reply) -> None:
    conn.execute(
        "UPDATE replies SET state = ?, attempts = ?, retry_at = ?, outcome_position = ?, "
        "umid = ?, code = ? WHERE position = ? AND action = ?",
        (
            row.state,
            row.attempts,
            row.retry_at,
            row.outcome_position,
            row.umid,
            row.code,
            row.position,
            row.action,
        ),
    )


def _one(conn: sqlite3.Connection, position: int, action: str) -> Reply | None:
    found = conn.execute(
        f"SELECT {COLUMNS} FROM replies WHERE position = ? AND action = ?",  # noqa: S608
        (position, action),
    ).fetchone()
    return None if found is None else _reply(found)


def _reply(row: tuple[object, ...]) -> Reply:
    return msgspec.convert(dict(zip(_NAMES, row, strict=True)), Reply)


# -- reads (the read model's outbox queries) ---------------------------------------------------
def open_replies(conn: sqlite3.Connection, *, after: int, limit: int) -> list[Reply]:
    """Up to ``limit`` open rows with position > ``after``, oldest first (all tenants)."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM replies WHERE {_OPEN} AND position > ? "  # noqa: S608
        "ORDER BY position LIMIT ?",
        (after, limit),
    ).fetchall()
    return [_reply(r) for r in rows]


def replies_at(conn: sqlite3.Connection, position: int) -> list[Reply]:
    """The rows (reply, blacklist) of the entry at ``position``."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM replies WHERE position = ? ORDER BY action",  # noqa: S608
        (position,),
    ).fetchall()
    return [_reply(r) for r in rows]


def reply_for_message(conn: sqlite3.Connection, tenant: str, event_id: str) -> Reply | None:
    """The reply row whose ``clientMessageId`` was ``event_id`` (of ``tenant``)."""
    found = conn.execute(
        f"SELECT {COLUMNS} FROM replies WHERE event_id = ? AND tenant = ? "  # noqa: S608
        "AND action = 'reply'",
        (event_id, tenant),
    ).fetchone()
    return None if found is None else _reply(found)


def outbox_counts(conn: sqlite3.Connection) -> OutboxCounts:
    """Rows per (action, state) and the oldest open row's recorded time."""
    counts: dict[str, dict[str, int]] = {}
    for action, state, n in conn.execute(
        "SELECT action, state, count(*) FROM replies GROUP BY action, state"
    ):
        counts.setdefault(str(action), {})[str(state)] = int(n)
    oldest = conn.execute(f"SELECT min(recorded_at) FROM replies WHERE {_OPEN}").fetchone()[0]  # noqa: S608
    return OutboxCounts(counts, None if oldest is None else str(oldest))
