"""Signed checkpoints in SQLite (the ``checkpoints`` table); signing itself is
``ledger.checkpoint_log.sign``."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from ledger import checkpoint_log
from ledger.checkpoint import Signer
from ledger.checkpoint_log import CheckpointRecord
from ledger.errors import NotFound
from ledger.sqlite.tree import Nodes
from ledger.timefmt import format_time

_COLUMNS = "size, root, note, signed_at"


class Table:
    """The ``checkpoints`` table on ``conn`` (``ledger.checkpoint_log.CheckpointTable``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def latest(self) -> CheckpointRecord | None:
        """The newest checkpoint, or ``None`` before the first."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1"  # noqa: S608
        ).fetchone()
        return None if row is None else CheckpointRecord(*row)

    def add(self, record: CheckpointRecord) -> None:
        """Keep ``record``."""
        self.conn.execute(
            "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)",
            (record.size, record.root, record.note, record.signed_at),
        )


def latest(conn: sqlite3.Connection) -> CheckpointRecord | None:
    """The newest checkpoint, or ``None`` before the first."""
    return Table(conn).latest()


def since(conn: sqlite3.Connection, size: int, limit: int = 1000) -> list[CheckpointRecord]:
    """Checkpoints with tree size ≥ ``size``, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM checkpoints WHERE size >= ? ORDER BY size LIMIT ?",  # noqa: S608
        (size, limit),
    ).fetchall()
    return [CheckpointRecord(*r) for r in rows]


def at_size(conn: sqlite3.Connection, size: int) -> CheckpointRecord:
    """The checkpoint of exactly ``size`` entries (``NotFound`` otherwise)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM checkpoints WHERE size = ?", (size,)).fetchone()  # noqa: S608
    if row is None:
        raise NotFound(f"no checkpoint was signed at tree size {size}")
    return CheckpointRecord(*row)


def sign(
    conn: sqlite3.Connection,
    signer: Signer,
    origin: str,
    now: datetime,
    *,
    min_interval: float | None = None,
) -> CheckpointRecord | None:
    """Sign a checkpoint of the current tree if it grew (``conn`` inside a write transaction);
    see ``ledger.checkpoint_log.sign`` for what is returned and refused."""
    row = conn.execute("SELECT verifier_key FROM signer").fetchone()
    if checkpoint_log.check_signer(None if row is None else str(row[0]), signer):
        conn.execute(
            "INSERT INTO signer (one, verifier_key, recorded_at) VALUES (1, ?, ?)",
            (signer.verifier_key, format_time(now)),
        )
    return checkpoint_log.sign(
        Table(conn), Nodes(conn), signer, origin, now, min_interval=min_interval
    )
