"""A SQLite store's image (``ledger.image``): read in one read transaction, written in the
store's exclusive write transaction, the projections applied as a replay applies them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import msgspec

from ledger import tree as pure
from ledger.image import EvidenceRecord, ImageEntry, Records, SignerRecord, StoreImage
from ledger.sqlite import checkpoints as checkpoint_log
from ledger.sqlite import quarantine, tree
from ledger.sqlite.connection import unavailable_on_driver_error
from ledger.sqlite.keys import SqliteKeys
from ledger.sqlite.store import SqliteLogStore, head_of
from ledger.store import Committed, StoredEntry
from projections.sqlite.projectors import projectors

_EVERY = 1 << 62


class SqliteImage:
    """The image on one read transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def head(self) -> int:
        """See ``ledger.image.StoreImage``."""
        return head_of(self.conn)

    def root(self) -> bytes:
        """See ``ledger.image.StoreImage``."""
        return pure.root(tree.Nodes(self.conn), self.head())

    def entries(self, after: int, limit: int) -> list[ImageEntry]:
        """See ``ledger.image.StoreImage``."""
        rows = self.conn.execute(
            "SELECT l.position, l.entry, l.leaf_hash, e.position, e.salt, e.content, "
            "e.erased_at, e.erase_reason FROM log l LEFT JOIN evidence e USING (position) "
            "WHERE l.position > ? ORDER BY l.position LIMIT ?",
            (after, limit),
        )
        return [ImageEntry(StoredEntry(*row[:3]), _evidence(row[3:])) for row in rows]

    def records(self) -> Records:
        """See ``ledger.image.StoreImage``."""
        signer = self.conn.execute("SELECT verifier_key, recorded_at FROM signer").fetchone()
        return Records(
            checkpoints=checkpoint_log.since(self.conn, 0, _EVERY),
            keys=SqliteKeys(self.conn).all(),
            quarantine=quarantine.every(self.conn),
            signer=None if signer is None else SignerRecord(*signer),
        )


class SqliteImages:
    """``ledger.image.StoreImages`` on a ``SqliteLogStore``."""

    def __init__(self, store: SqliteLogStore) -> None:
        self._store = store

    @contextmanager
    def read(self) -> Iterator[StoreImage]:
        """See ``ledger.image.StoreImages``."""
        with unavailable_on_driver_error("cannot read the store"), self._store.snapshot() as conn:
            yield SqliteImage(conn)

    def is_empty(self) -> bool:
        """See ``ledger.image.StoreImages``."""
        conn = self._store.reader()
        return not any(
            conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()  # noqa: S608
            for table in ("log", "api_keys", "checkpoints", "quarantine", "signer")
        )

    def root(self) -> bytes:
        """See ``ledger.image.StoreImages``."""
        with self.read() as image:
            return image.root()

    def restore(self, items: Sequence[ImageEntry]) -> None:
        """See ``ledger.image.StoreImages``."""
        committed = [Committed(item.stored, item.stored.entry) for item in items]
        with self._store.write_transaction() as conn:
            for item, done in zip(items, committed, strict=True):
                _insert(conn, item, done)
            tree.add_leaves(conn, [item.stored for item in items])
            for projector in projectors(strict=False):
                projector.apply(conn, committed)

    def restore_records(self, records: Records) -> None:
        """See ``ledger.image.StoreImages``."""
        with self._store.write_transaction() as conn:
            for record in records.checkpoints:
                checkpoint_log.Table(conn).add(record)
            keys = SqliteKeys(conn)
            for key in records.keys:
                keys.add(key)
            for body in records.quarantine:
                quarantine.add(conn, body, keep_id=True)
            if records.signer is not None:
                conn.execute(
                    "INSERT INTO signer (one, verifier_key, recorded_at) VALUES (1, ?, ?)",
                    (records.signer.verifier_key, records.signer.recorded_at),
                )


def _evidence(row: Sequence[object]) -> EvidenceRecord | None:
    """An evidence record from (position, salt, content, erased_at, erase_reason), if any."""
    has, salt, content, erased_at, reason = row
    if has is None:
        return None
    return msgspec.convert(
        {"salt": salt, "content": content, "erased_at": erased_at, "erase_reason": reason},
        EvidenceRecord,
    )


def _insert(conn: sqlite3.Connection, item: ImageEntry, done: Committed) -> None:
    entry, stored = done.entry, item.stored
    conn.execute(
        "INSERT INTO log (position, tenant, key, event_id, type, subaccount, msisdn, "
        "occurred_at, recorded_at, entry, leaf_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (stored.position, entry.tenant, entry.key, entry.event_id, entry.type,
         entry.subaccount, entry.msisdn, entry.occurred_at, entry.recorded_at, stored.data,
         stored.leaf_hash),
    )  # fmt: skip
    evidence = item.evidence
    if evidence is not None:
        conn.execute(
            "INSERT INTO evidence (position, salt, content, erased_at, erase_reason) "
            "VALUES (?, ?, ?, ?, ?)",
            (stored.position, evidence.salt, evidence.content, evidence.erased_at,
             evidence.erase_reason),
        )  # fmt: skip
