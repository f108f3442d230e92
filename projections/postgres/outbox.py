"""The PostgreSQL outbox projector and its reads (``projections.eightxeight.outbox``): the
``replies`` table kept in step with the log inside the append transaction.

Guarantees (as on SQLite, ``projections.sqlite.outbox``): the rows are a pure function of the
log (``opened`` and ``moved`` applied in position order), so a rebuild gives the rows live
appends gave. A group of entries costs at most three statements, whatever its size: one reads
the rows its outcome entries move (those not opened in the group itself), one inserts the rows
it opens (in their state after the group) and one writes the moved ones with the projector's
position — multi-row statements, never a pipeline, inside the log lock.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ledger.postgres.connection import Connection
from ledger.store import Committed
from projections.eightxeight.outbox import (
    OPEN_STATES,
    Action,
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
_TYPES = (
    "bigint", "text", "text", "text", "text", "text", "text", "text", "text",
    "text", "integer", "text", "bigint", "text", "text",
)  # fmt: skip
_INSERT = (
    f"INSERT INTO replies ({COLUMNS}) SELECT * FROM unnest("  # noqa: S608
    + ", ".join(f"%s::{t}[]" for t in _TYPES)
    + ")"
)
# The moved rows and the projector's position: one statement.
_MOVE = (
    "WITH applied AS ("
    " INSERT INTO projection_positions (name, position) VALUES ('outbox', %s)"
    " ON CONFLICT (name) DO UPDATE SET position = excluded.position"
    ") UPDATE replies r SET state = m.state, attempts = m.attempts, retry_at = m.retry_at, "
    "outcome_position = m.outcome_position, umid = m.umid, code = m.code FROM unnest("
    "%s::bigint[], %s::text[], %s::text[], %s::integer[], %s::text[], %s::bigint[], %s::text[], "
    "%s::text[]) AS m (position, action, state, attempts, retry_at, outcome_position, umid, code) "
    "WHERE r.position = m.position AND r.action = m.action"
)
_MOVED = (
    "position",
    "action",
    "state",
    "attempts",
    "retry_at",
    "outcome_position",
    "umid",
    "code",
)
_OPEN = "state IN ('pending', 'attempted', 'deferred')"
"""The condition of the partial index ``replies_open`` (migration 0003), verbatim."""
assert OPEN_STATES == ("pending", "attempted", "deferred")

Key = tuple[int, Action]


class OutboxProjector:
    """Keeps ``replies`` in step with the log."""

    name = "outbox"

    def apply(self, conn: Connection, items: Sequence[Committed]) -> None:
        """Open rows for entries that ask for a reply or a blacklist push; move them on their
        outcome entries (see the module)."""
        wanted = [found for item in items if (found := target(item.entry.event)) is not None]
        stored = _rows(conn, wanted)
        fresh: dict[Key, Reply] = {}
        changed: set[Key] = set()
        for item in items:
            entry = item.entry
            for row in opened(entry):
                fresh[(row.position, row.action)] = row
            found = target(entry.event)
            if found is None:
                continue
            if found in fresh:
                fresh[found] = moved(fresh[found], entry.event, entry.position)
            elif found in stored:
                stored[found] = moved(stored[found], entry.event, entry.position)
                changed.add(found)
        if fresh:
            conn.execute(_INSERT, _columns(list(fresh.values()), _NAMES))
        moves = _columns([stored[key] for key in changed], _MOVED)
        conn.execute(_MOVE, [items[-1].stored.position, *moves])

    def reset(self, conn: Connection) -> None:
        """Drop every row."""
        conn.execute("DELETE FROM replies")
        conn.execute(
            "INSERT INTO projection_positions (name, position) VALUES ('outbox', 0) "
            "ON CONFLICT (name) DO UPDATE SET position = 0"
        )


def _columns(rows: Sequence[Reply], names: Sequence[str]) -> list[list[object]]:
    """Each of ``names`` as one array parameter over ``rows`` (for ``unnest``)."""
    return [[getattr(row, name) for row in rows] for name in names]


def _rows(conn: Connection, keys: Sequence[Key]) -> dict[Key, Reply]:
    """The stored rows of ``keys`` (those that exist)."""
    if not keys:
        return {}
    found = conn.execute(
        f"SELECT {COLUMNS} FROM replies WHERE (position, action) IN "  # noqa: S608
        "(SELECT * FROM unnest(%s::bigint[], %s::text[]))",
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall()
    rows = [_reply(r) for r in found]
    return {(row.position, row.action): row for row in rows}


def _reply(row: Sequence[object]) -> Reply:
    return msgspec.convert(dict(zip(_NAMES, row, strict=True)), Reply)


# -- reads (the read model's outbox queries) ---------------------------------------------------
def open_replies(conn: Connection, *, after: int, limit: int) -> list[Reply]:
    """Up to ``limit`` open rows with position > ``after``, oldest first (all tenants)."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM replies WHERE {_OPEN} AND position > %s "  # noqa: S608
        "ORDER BY position, action LIMIT %s",
        (after, limit),
    ).fetchall()
    return [_reply(r) for r in rows]


def replies_at(conn: Connection, position: int) -> list[Reply]:
    """The rows (reply, blacklist) of the entry at ``position``."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM replies WHERE position = %s ORDER BY action",  # noqa: S608
        (position,),
    ).fetchall()
    return [_reply(r) for r in rows]


def reply_for_message(conn: Connection, tenant: str, event_id: str) -> Reply | None:
    """The reply row whose ``clientMessageId`` was ``event_id`` (of ``tenant``)."""
    found = conn.execute(
        f"SELECT {COLUMNS} FROM replies WHERE event_id = %s AND tenant = %s "  # noqa: S608
        "AND action = 'reply'",
        (event_id, tenant),
    ).fetchone()
    return None if found is None else _reply(found)


def outbox_counts(conn: Connection) -> OutboxCounts:
    """Rows per (action, state) and the oldest open row's recorded time."""
    counts: dict[str, dict[str, int]] = {}
    for action, state, n in conn.execute(
        "SELECT action, state, count(*) FROM replies GROUP BY action, state"
    ).fetchall():
        counts.setdefault(str(action), {})[str(state)] = int(n)
    row = conn.execute(f"SELECT min(recorded_at) FROM replies WHERE {_OPEN}").fetchone()  # noqa: S608
    oldest = None if row is None else row[0]
    return OutboxCounts(counts, None if oldest is None else str(oldest))
