"""Signing checkpoints on SQLite: inside the store's write transaction, under the cross-process
write lock, so several workers never sign twice for one interval (see
``ledger.checkpoint_log.sign`` for what is checked before signing)."""

from __future__ import annotations

from datetime import datetime

from ledger.checkpoint import Signer
from ledger.checkpoint_log import CheckpointRecord
from ledger.sqlite import checkpoints as checkpoint_log
from ledger.sqlite import tree
from ledger.sqlite.store import SqliteLogStore


class SqliteCheckpoints:
    """Signs checkpoints of a ``SqliteLogStore``'s tree."""

    def __init__(self, store: SqliteLogStore) -> None:
        self._store = store

    def sign(
        self, signer: Signer, origin: str, now: datetime, *, min_interval: float | None = None
    ) -> tuple[CheckpointRecord | None, bool]:
        """A checkpoint of the whole log if it grew, and whether it was signed now.

        ``(None, False)`` when ``min_interval`` seconds have not passed since the last one.
        When the latest checkpoint already covers the newest entry it is returned without a
        write transaction: answering it never waits for, nor holds up, writers.
        """
        with self._store.snapshot() as conn:
            latest = checkpoint_log.latest(conn)
            if latest is not None and latest.size >= tree.tree_size(conn):
                return latest, False
        with self._store.write_transaction() as conn:
            before = checkpoint_log.latest(conn)
            record = checkpoint_log.sign(conn, signer, origin, now, min_interval=min_interval)
        created = record is not None and (before is None or record.size != before.size)
        return record, created
