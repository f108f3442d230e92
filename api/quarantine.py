"""The webhook quarantine: bodies that could not be understood, kept with the reason.

Guarantees: a kept body is stored byte for byte (up to ``MAX_KEPT_BYTES``; a longer one keeps
that prefix with the whole body's length and SHA-256, marked truncated) with its tenant,
receive time, reason and request metadata, and is durable once ``keep`` returns; if it cannot
be stored ``keep`` raises
``StoreUnavailable`` (the caller must not pretend it was kept). Listing shows one tenant's bodies
only, oldest first. Quarantined bodies are personal data and never part of the log.
"""

from __future__ import annotations

import sqlite3

import msgspec

from ledger.entries import b64, keep_bytes
from ledger.errors import StoreUnavailable
from ledger.sqlite.store import SqliteLogStore

MAX_REASON_CHARS = 500
MAX_CONTENT_TYPE_CHARS = 200


class Received(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how a request arrived (kept beside a quarantined body)."""

    received_at: str
    content_type: str | None = None
    remote_addr: str | None = None
    request_id: str | None = None


class QuarantinedBody(msgspec.Struct, frozen=True, kw_only=True):
    """One quarantined body as listed.

    ``body`` is the text with invalid UTF-8 replaced; ``body_base64`` is the exact bytes.
    """

    id: int
    received_at: str
    reason: str
    content_type: str | None
    body: str
    body_base64: str
    remote_addr: str | None
    request_id: str | None
    truncated: bool = False
    """Only the first ``MAX_KEPT_BYTES`` bytes were kept; ``length`` and ``sha256`` describe
    the whole body."""
    length: int | None = None
    sha256: str | None = None


def keep(store: SqliteLogStore, tenant: str, reason: str, body: bytes, received: Received) -> int:
    """Store ``body`` in the quarantine and return its id."""
    kept = keep_bytes(body)
    row = (
        tenant,
        received.received_at,
        reason[:MAX_REASON_CHARS],
        (received.content_type or None) and received.content_type[:MAX_CONTENT_TYPE_CHARS],
        kept.data,
        received.remote_addr,
        received.request_id,
        kept.length,
        kept.sha256,
    )
    try:
        with store.write_transaction() as conn:
            cur = conn.execute(
                "INSERT INTO quarantine (tenant, received_at, reason, content_type, body, "
                "remote_addr, request_id, body_length, body_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return int(cur.lastrowid or 0)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"the body could not be quarantined: {exc}") from exc


def listed(
    conn: sqlite3.Connection, tenant: str, *, after_id: int = 0, limit: int = 100
) -> list[QuarantinedBody]:
    """Up to ``limit`` of ``tenant``'s quarantined bodies with id > ``after_id``, oldest first."""
    rows = conn.execute(
        "SELECT id, received_at, reason, content_type, body, remote_addr, request_id, "
        "body_length, body_sha256 FROM quarantine WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?",
        (tenant, after_id, limit),
    )
    return [
        QuarantinedBody(
            id=r[0],
            received_at=r[1],
            reason=r[2],
            content_type=r[3],
            body=bytes(r[4]).decode("utf-8", errors="replace"),
            body_base64=b64(bytes(r[4])),
            remote_addr=r[5],
            request_id=r[6],
            truncated=r[7] is not None,
            length=r[7],
            sha256=r[8],
        )
        for r in rows
    ]
