"""Signed checkpoints of the log, kept forever in the ``checkpoints`` table.

Guarantees: a checkpoint is signed only for a tree larger than the previous checkpoint's, and only
after a consistency proof from the previous checkpoint to the new tree has been built from the
stored tree and verified (so no two checkpoints are ever signed without a consistency proof
between them); signing runs inside the store's write transaction, so several workers never sign
twice for one interval.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import msgspec

from ledger import merkle, tree
from ledger.checkpoint import Checkpoint, Signer, checkpoint_body
from ledger.errors import NotFound, TamperDetected
from ledger.timefmt import format_time, parse_time


class CheckpointRecord(msgspec.Struct, frozen=True):
    """One signed checkpoint as stored."""

    size: int
    root: bytes
    note: str
    signed_at: str


_COLUMNS = "size, root, note, signed_at"


def latest(conn: sqlite3.Connection) -> CheckpointRecord | None:
    """The newest checkpoint, or ``None`` before the first."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()  # noqa: S608
    return None if row is None else CheckpointRecord(*row)


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
    """Sign a checkpoint of the current tree if it grew (``conn`` inside a write transaction).

    Returns the new checkpoint; the latest one if the tree has not grown since; ``None`` when
    ``min_interval`` seconds have not passed since the latest. Raises ``TamperDetected`` if the
    stored tree is not consistent with the latest checkpoint.
    """
    size = tree.tree_size(conn)
    previous = latest(conn)
    if previous is not None and previous.size >= size:
        return previous
    too_soon = (
        previous is not None
        and min_interval
        and (now - parse_time(previous.signed_at) < timedelta(seconds=min_interval))
    )
    if too_soon:
        return None
    root = tree.root(conn, size)
    if previous is not None and previous.size > 0:
        proof = tree.consistency_proof(conn, previous.size, size)
        if not merkle.verify_consistency(previous.size, size, previous.root, root, proof):
            raise TamperDetected(
                f"the log at size {size} is not consistent with checkpoint {previous.size}; "
                "refusing to sign"
            )
    note = signer.sign_note(checkpoint_body(Checkpoint(origin=origin, size=size, root=root)))
    record = CheckpointRecord(size, root, note, format_time(now))
    conn.execute(
        "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)",
        (record.size, record.root, record.note, record.signed_at),
    )
    return record
