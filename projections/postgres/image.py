"""A PostgreSQL store's image (``ledger.image``): read in one ``REPEATABLE READ`` snapshot,
written under the log lock, the projections applied as a replay applies them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import msgspec

from ledger import tree as pure
from ledger.image import EvidenceRecord, ImageEntry, Records, SignerRecord, StoreImage
from ledger.postgres import records as stored_records
from ledger.postgres import tree
from ledger.postgres.connection import Connection
from ledger.postgres.records import CheckpointTable, PgKeys
from ledger.postgres.store import PgLogStore, head_of
from ledger.store import Committed, StoredEntry
from projections.postgres.projectors import projectors

_EVERY = 1 << 62
# What a restore writes under the log lock: one multi-row statement per table (never a
# pipeline, ``ledger.postgres.store``).
_LOG = (
    "INSERT INTO log (position, tenant, key, event_id, type, subaccount, msisdn, occurred_at, "
    "recorded_at, entry, leaf_hash) SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[], "
    "%s::bytea[])"
)
_EVIDENCE = (
    "INSERT INTO evidence (position, salt, content, erased_at, erase_reason) "
    "SELECT * FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[], %s::text[], %s::text[])"
)
_QUARANTINE = (
    "INSERT INTO quarantine (id, tenant, received_at, reason, content_type, body, remote_addr, "
    "request_id, body_length, body_sha256) OVERRIDING SYSTEM VALUE SELECT * FROM unnest("
    "%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[], %s::text[], "
    "%s::text[], %s::bigint[], %s::text[])"
)


class PgImage:
    """The image on one read snapshot."""

    def __init__(self, conn: Connection) -> None:
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
            "WHERE l.position > %s ORDER BY l.position LIMIT %s",
            (after, limit),
        ).fetchall()
        return [
            ImageEntry(StoredEntry(int(r[0]), bytes(r[1]), bytes(r[2])), _evidence(r[3:]))
            for r in rows
        ]

    def records(self) -> Records:
        """See ``ledger.image.StoreImage``."""
        signer = self.conn.execute("SELECT verifier_key, recorded_at FROM signer").fetchone()
        quarantined = self.conn.execute("SELECT DISTINCT tenant FROM quarantine").fetchall()
        bodies = [
            body
            for (tenant,) in quarantined
            for body in stored_records.quarantined(self.conn, str(tenant), 0, _EVERY)
        ]
        conn = self.conn
        return Records(
            checkpoints=CheckpointTable(conn).since(0, _EVERY),
            keys=PgKeys(lambda: _same(conn)).all(),
            quarantine=sorted(bodies, key=lambda b: b.id),
            signer=None if signer is None else SignerRecord(str(signer[0]), str(signer[1])),
        )


class PgImages:
    """``ledger.image.StoreImages`` on a ``PgLogStore``."""

    def __init__(self, store: PgLogStore) -> None:
        self._store = store

    @contextmanager
    def read(self) -> Iterator[StoreImage]:
        """See ``ledger.image.StoreImages``."""
        with self._store.snapshot() as conn:
            yield PgImage(conn)

    def is_empty(self) -> bool:
        """See ``ledger.image.StoreImages``."""
        with self._store.reader() as conn:
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
        evidence = [
            (item.stored.position, e.salt, e.content, e.erased_at, e.erase_reason)
            for item in items
            if (e := item.evidence) is not None
        ]
        with self._store.write_transaction() as conn:
            _insert(conn, _LOG, [_log_row(done) for done in committed])
            _insert(conn, _EVIDENCE, evidence)
            tree.add_leaves(conn, [item.stored for item in items])
            for projector in projectors(strict=False):
                projector.apply(conn, committed)

    def restore_records(self, records: Records) -> None:
        """See ``ledger.image.StoreImages``."""
        with self._store.write_transaction() as conn:
            for record in records.checkpoints:
                CheckpointTable(conn).add(record)
            keys = PgKeys(lambda: _same(conn))
            for key in records.keys:
                keys.add(key)
            _insert(
                conn,
                _QUARANTINE,
                [
                    (b.id, b.tenant, b.received_at, b.reason, b.content_type, b.body,
                     b.remote_addr, b.request_id, b.body_length, b.body_sha256)
                    for b in records.quarantine
                ],
            )  # fmt: skip
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('quarantine', 'id'), "
                "coalesce((SELECT max(id) FROM quarantine), 0) + 1, false)"
            )
            if records.signer is not None:
                conn.execute(
                    "INSERT INTO signer (verifier_key, recorded_at) VALUES (%s, %s)",
                    (records.signer.verifier_key, records.signer.recorded_at),
                )


def _insert(conn: Connection, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
    """``rows`` through ``statement`` (an ``INSERT ... SELECT * FROM unnest(...)``): one
    array parameter per column."""
    if rows:
        conn.execute(statement, [list(column) for column in zip(*rows, strict=True)])


@contextmanager
def _same(conn: Connection) -> Iterator[Connection]:
    yield conn


def _log_row(done: Committed) -> tuple[object, ...]:
    entry, stored = done.entry, done.stored
    return (stored.position, entry.tenant, entry.key, entry.event_id, entry.type,
            entry.subaccount, entry.msisdn, entry.occurred_at, entry.recorded_at, stored.data,
            stored.leaf_hash)  # fmt: skip


def _evidence(row: Sequence[object]) -> EvidenceRecord | None:
    """An evidence record from (position, salt, content, erased_at, erase_reason), if any."""
    has, salt, content, erased_at, reason = row
    if has is None:
        return None
    return msgspec.convert(
        {
            "salt": None if salt is None else bytes(salt),  # type: ignore[call-overload]
            "content": None if content is None else bytes(content),  # type: ignore[call-overload]
            "erased_at": erased_at,
            "erase_reason": reason,
        },
        EvidenceRecord,
    )
