"""Bookkeeping shared by projectors: the last log position each has applied."""

from __future__ import annotations

import sqlite3


def set_position(conn: sqlite3.Connection, name: str, position: int) -> None:
    """Record that projection ``name`` has applied the log up to ``position`` (same transaction)."""
    conn.execute(
        "INSERT INTO projection_positions (name, position) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (name, position),
    )


def get_position(conn: sqlite3.Connection, name: str) -> int:
    """The last position projection ``name`` applied (0 if never)."""
    row = conn.execute(
        "SELECT position FROM projection_positions WHERE name = ?", (name,)
    ).fetchone()
    return 0 if row is None else int(row[0])
