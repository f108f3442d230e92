"""The webhook quarantine: bodies that could not be understood, kept with the reason.

Guarantees: a kept body is stored byte for byte (up to ``MAX_KEPT_BYTES``; a longer one keeps
that prefix with the whole body's length and SHA-256, marked truncated) with its tenant,
receive time, reason and request metadata, and is durable once ``keep`` returns; if it cannot
be stored ``keep`` raises
``StoreUnavailable`` (the caller must not pretend it was kept). Listing shows one tenant's bodies
only, oldest first. Quarantined bodies are personal data and never part of the log.
"""

from __future__ import annotations

import msgspec

from ledger.entries import b64, keep_bytes
from ledger.store import LogStore, QuarantineRecord
from ledger.timefmt import format_time

MAX_REASON_CHARS = 500
MAX_CONTENT_TYPE_CHARS = 200


class Received(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how a request arrived (kept beside a quarantined body)."""

    received_at: str | None = None
    """``None``: read from the store's clock when the body is kept. The request handlers leave
    it so: on PostgreSQL the clock is a database round trip, which never runs on the event
    loop, and only a quarantined body needs it."""
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


def keep(store: LogStore, tenant: str, reason: str, body: bytes, received: Received) -> int:
    """Store ``body`` in the quarantine and return its id."""
    kept = keep_bytes(body)
    record = QuarantineRecord(
        tenant=tenant,
        received_at=received.received_at or format_time(store.clock()),
        reason=reason[:MAX_REASON_CHARS],
        content_type=(received.content_type or None)
        and received.content_type[:MAX_CONTENT_TYPE_CHARS],
        body=kept.data,
        remote_addr=received.remote_addr,
        request_id=received.request_id,
        body_length=kept.length,
        body_sha256=kept.sha256,
    )
    return store.quarantine(record)


def listed(
    store: LogStore, tenant: str, *, after_id: int = 0, limit: int = 100
) -> list[QuarantinedBody]:
    """Up to ``limit`` of ``tenant``'s quarantined bodies with id > ``after_id``, oldest first."""
    return [
        QuarantinedBody(
            id=r.id,
            received_at=r.received_at,
            reason=r.reason,
            content_type=r.content_type,
            body=r.body.decode("utf-8", errors="replace"),
            body_base64=b64(r.body),
            remote_addr=r.remote_addr,
            request_id=r.request_id,
            truncated=r.body_length is not None,
            length=r.body_length,
            sha256=r.body_sha256,
        )
        for r in store.quarantined(tenant, after_id=after_id, limit=limit)
    ]
