"""API keys, the quarantine and signed checkpoints in PostgreSQL: the SQL behind
``ledger.store.KeyTable``, the store's quarantine and ``ledger.checkpoint_log``.

Guarantees as in every adapter: only a key's SHA-256 is stored and a revocation is kept (no key
is ever deleted); a quarantined body is kept byte for byte; checkpoints are never changed (the
database refuses it, migration 0001). A driver error becomes ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from ledger.checkpoint_log import CheckpointRecord
from ledger.errors import NotFound
from ledger.postgres.connection import Connection, unavailable_on_driver_error
from ledger.store import (
    KEY_COLUMNS,
    QUARANTINE_COLUMNS,
    KeyRecord,
    QuarantineRecord,
    key_record,
    quarantine_record,
)

_KEY_COLUMNS = KEY_COLUMNS


class PgKeys:
    """The ``KeyTable`` port on the connections ``borrow`` lends (a pooled one per call, or one
    transaction's for every call)."""

    def __init__(self, borrow: Callable[[], AbstractContextManager[Connection]]) -> None:
        self._borrow = borrow

    def add(self, record: KeyRecord) -> None:
        """See ``ledger.store.KeyTable``."""
        with self._borrow() as conn, unavailable_on_driver_error("the key could not be stored"):
            conn.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",  # noqa: S608
                (
                    record.id,
                    record.tenant,
                    ",".join(record.scopes),
                    record.secret_sha256,
                    record.label,
                    record.created_at,
                    record.revoked_at,
                ),
            )

    def all(self) -> list[KeyRecord]:
        """See ``ledger.store.KeyTable``."""
        with self._borrow() as conn, unavailable_on_driver_error("the keys could not be read"):
            rows = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"  # noqa: S608
            ).fetchall()
        return [key_record(r) for r in rows]

    def by_id(self, key_id: str) -> KeyRecord | None:
        """See ``ledger.store.KeyTable``."""
        with self._borrow() as conn, unavailable_on_driver_error("the key could not be read"):
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = %s",  # noqa: S608
                (key_id,),
            ).fetchone()
        return None if row is None else key_record(row)

    def revoke(self, key_id: str, at: str) -> bool:
        """See ``ledger.store.KeyTable``."""
        with self._borrow() as conn, unavailable_on_driver_error("the key could not be revoked"):
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (at, key_id),
            )
        return cur.rowcount > 0

    def any(self) -> bool:
        """See ``ledger.store.KeyTable``."""
        with self._borrow() as conn, unavailable_on_driver_error("the keys could not be read"):
            return conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None


# -- quarantine ------------------------------------------------------------------------------
_QUARANTINE_COLUMNS = QUARANTINE_COLUMNS


def add_quarantined(conn: Connection, record: QuarantineRecord) -> int:
    """Keep ``record``; its id."""
    with unavailable_on_driver_error("the body could not be quarantined"):
        row = conn.execute(
            f"INSERT INTO quarantine ({_QUARANTINE_COLUMNS}) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
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
        ).fetchone()
    assert row is not None
    return int(row[0])


def quarantined(conn: Connection, tenant: str, after_id: int, limit: int) -> list[QuarantineRecord]:
    """Up to ``limit`` of ``tenant``'s records with id > ``after_id``, oldest first."""
    with unavailable_on_driver_error("the quarantine could not be read"):
        rows = conn.execute(
            f"SELECT id, {_QUARANTINE_COLUMNS} FROM quarantine "  # noqa: S608
            "WHERE tenant = %s AND id > %s ORDER BY id LIMIT %s",
            (tenant, after_id, limit),
        ).fetchall()
    return [quarantine_record(r) for r in rows]


def erase_quarantined(conn: Connection, ids: Sequence[int], note: str) -> None:
    """Erase the bodies (and what describes them) of records ``ids`` inside the caller's write
    transaction; a record keeps when it was received, and ``note`` joins its reason. Records
    already erased are left as they are."""
    if not ids:
        return
    conn.execute(
        "UPDATE quarantine SET body = ''::bytea, body_length = NULL, body_sha256 = NULL, "
        "remote_addr = NULL, reason = reason || '; ' || %s "
        "WHERE length(body) > 0 AND id = ANY(%s::bigint[])",
        (note, list(ids)),
    )


# -- checkpoints -----------------------------------------------------------------------------
_CHECKPOINT_COLUMNS = "size, root, note, signed_at"


def _checkpoint(row: Sequence[object]) -> CheckpointRecord:
    size, root, note, signed_at = row
    return CheckpointRecord(int(size), bytes(root), str(note), str(signed_at))  # type: ignore[call-overload]


class CheckpointTable:
    """The ``checkpoints`` table on ``conn`` (``ledger.checkpoint_log.CheckpointTable``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def latest(self) -> CheckpointRecord | None:
        """The newest checkpoint, or ``None`` before the first."""
        row = self.conn.execute(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1"  # noqa: S608
        ).fetchone()
        return None if row is None else _checkpoint(row)

    def add(self, record: CheckpointRecord) -> None:
        """Keep ``record``."""
        self.conn.execute(
            "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (%s, %s, %s, %s)",
            (record.size, record.root, record.note, record.signed_at),
        )

    def since(self, size: int, limit: int) -> list[CheckpointRecord]:
        """Checkpoints with tree size ≥ ``size``, oldest first."""
        rows = self.conn.execute(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE size >= %s "  # noqa: S608
            "ORDER BY size LIMIT %s",
            (size, limit),
        ).fetchall()
        return [_checkpoint(r) for r in rows]

    def at_size(self, size: int) -> CheckpointRecord:
        """The checkpoint of exactly ``size`` entries (``NotFound`` otherwise)."""
        row = self.conn.execute(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE size = %s",  # noqa: S608
            (size,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no checkpoint was signed at tree size {size}")
        return _checkpoint(row)
