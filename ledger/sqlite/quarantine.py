"""The webhook quarantine in SQLite (the ``quarantine`` table): the SQL of ``api.quarantine``,
which decides what is kept and how it is shown."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ledger.sqlite.connection import unavailable_on_driver_error
from ledger.store import QUARANTINE_COLUMNS, QuarantineRecord, quarantine_record

_COLUMNS = QUARANTINE_COLUMNS


def add(conn: sqlite3.Connection, record: QuarantineRecord, *, keep_id: bool = False) -> int:
    """Keep ``record`` (inside the caller's write transaction); its id (``record.id`` itself
    with ``keep_id``: a copy of another store)."""
    columns, marks = ("id, " + _COLUMNS, "?, " * 10) if keep_id else (_COLUMNS, "?, " * 9)
    with unavailable_on_driver_error("the body could not be quarantined"):
        cur = conn.execute(
            f"INSERT INTO quarantine ({columns}) VALUES ({marks[:-2]})",  # noqa: S608
            (
                *((record.id,) if keep_id else ()),
                record.tenant,
                record.received_at,
                record.reason,
                record.content_type,
                record.body,
                record.remote_addr,
                record.request_id,
                record.body_length,
                record.body_sha256,
            ),
        )
    return int(cur.lastrowid or 0)


def every(conn: sqlite3.Connection) -> list[QuarantineRecord]:
    """Every quarantined body of every tenant, oldest first."""
    with unavailable_on_driver_error("the quarantine could not be read"):
        tenants = [r[0] for r in conn.execute("SELECT DISTINCT tenant FROM quarantine")]
    found = [r for t in tenants for r in listed(conn, t, after_id=0, limit=1 << 62)]
    return sorted(found, key=lambda r: r.id)


def listed(
    conn: sqlite3.Connection, tenant: str, *, after_id: int, limit: int
) -> list[QuarantineRecord]:
    """Up to ``limit`` of ``tenant``'s records with id > ``after_id``, oldest first."""
    with unavailable_on_driver_error("the quarantine could not be read"):
        rows = conn.execute(
            f"SELECT id, {_COLUMNS} FROM quarantine WHERE tenant = ? AND id > ? "  # noqa: S608
            "ORDER BY id LIMIT ?",
            (tenant, after_id, limit),
        ).fetchall()
    return [quarantine_record(r) for r in rows]


def erase(conn: sqlite3.Connection, ids: Sequence[int], note: str) -> None:
    """Erase the bodies (and what describes them) of records ``ids`` inside the caller's write
    transaction; the record keeps when it was received and ``note`` joins its reason."""
    if not ids:
        return
    conn.execute(
        "UPDATE quarantine SET body = X'', body_length = NULL, body_sha256 = NULL, "
        "remote_addr = NULL, reason = reason || '; ' || ? WHERE length(body) > 0 "
        "AND id IN (SELECT value FROM json_each(?))",
        (note, str(list(ids))),
    )
