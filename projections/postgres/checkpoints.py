"""Signing checkpoints on PostgreSQL without blocking appends (the port's
``projections.read_model.CheckpointSigning``).

Guarantees: signing never takes the log lock. It runs in a ``READ COMMITTED`` transaction on a
pooled connection holding an advisory lock of its own (``checkpoints``), so several processes or
nodes never sign twice for one interval; ``ledger.checkpoint_log.sign`` reads the tree size
once, and the tree nodes up to that size never change, so the checkpoint is consistent while
appends go on. One verifier key per log: the first signer's key is stored in ``signer``
(migration 0001) in the same transaction as its first checkpoint, and a signer with another key
is refused (``Conflict``), nothing written.
"""

from __future__ import annotations

from datetime import datetime

from ledger import checkpoint_log
from ledger.checkpoint import Signer
from ledger.checkpoint_log import CheckpointRecord, check_signer
from ledger.postgres.connection import Connection, lock_key, unavailable_on_driver_error
from ledger.postgres.records import CheckpointTable
from ledger.postgres.store import PgLogStore
from ledger.postgres.tree import Nodes
from ledger.timefmt import format_time


class PgCheckpoints:
    """Signs checkpoints of a ``PgLogStore``'s tree (see the module)."""

    def __init__(self, store: PgLogStore) -> None:
        self._store = store

    def sign(
        self, signer: Signer, origin: str, now: datetime, *, min_interval: float | None = None
    ) -> tuple[CheckpointRecord | None, bool]:
        """A checkpoint of the whole log if it grew, and whether it was signed now:
        ``(None, False)`` when ``min_interval`` seconds have not passed since the latest one;
        the latest one, unsigned now, when it already covers the newest entry. ``Conflict``
        when the log's checkpoints are signed by another key."""
        with self._store.reader() as conn, conn.transaction():
            with unavailable_on_driver_error("cannot take the checkpoint lock"):
                conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(conn, "checkpoints"),))
            table = CheckpointTable(conn)
            before = table.latest()
            _claim(conn, signer, now)
            record = checkpoint_log.sign(
                table, Nodes(conn), signer, origin, now, min_interval=min_interval
            )
        created = record is not None and (before is None or record.size != before.size)
        return record, created


def _claim(conn: Connection, signer: Signer, now: datetime) -> None:
    """Make ``signer``'s verifier key the log's one signing key if it has none yet;
    ``Conflict`` if it has another (``ledger.checkpoint_log.check_signer``, under the
    checkpoint lock)."""
    row = conn.execute("SELECT verifier_key FROM signer").fetchone()
    if check_signer(None if row is None else str(row[0]), signer):
        conn.execute(
            "INSERT INTO signer (verifier_key, recorded_at) VALUES (%s, %s)",
            (signer.verifier_key, format_time(now)),
        )
