"""The log store port: the narrow interface every storage adapter implements.

Guarantees every adapter gives (checked by one contract test suite):
- ``append`` is atomic per call and durable once it returns; positions start at 1 and are dense
  and gapless in commit order; ``recorded_at`` never decreases with position;
- a draft whose (tenant, key) is already in the log writes nothing and returns the original
  entry with ``duplicate=True`` (also within one batch);
- stored bytes never change; reads return exactly the bytes that were hashed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

import msgspec

from ledger.entries import Entry, Evidence, decode_entry
from ledger.events import Event
from ledger.runner import Lease


class Draft(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An entry before the store assigns its position, recorded time and event id."""

    tenant: str
    key: str
    subaccount: str | None
    msisdn: str | None
    occurred_at: str | None
    """Canonical RFC 3339; ``None`` means "when recorded" (configuration, admin actions)."""
    event: Event
    evidence: Evidence | None = None
    unchanged: Unchanged | None = None
    """A precondition checked under the write lock: when it no longer holds, nothing of the
    call is written and ``Stale`` is raised (the caller reads again and retries)."""


class Unchanged(msgspec.Struct, frozen=True, gc=False):
    """What a read-then-append decision read still holds: no entry of ``types`` of ``tenant``
    was appended after ``position`` (e.g. no configuration changed the policy it used)."""

    tenant: str
    types: tuple[str, ...]
    position: int


class StoredEntry(msgspec.Struct, frozen=True, gc=False):
    """An entry as stored: its position, exact bytes and RFC 9162 leaf hash."""

    position: int
    data: bytes
    leaf_hash: bytes

    @property
    def entry(self) -> Entry:
        """The decoded entry document."""
        return decode_entry(self.data)


class Appended(msgspec.Struct, frozen=True, gc=False):
    """The result of appending one draft."""

    stored: StoredEntry
    duplicate: bool

    @property
    def position(self) -> int:
        """Position of the new entry, or of the original one for a duplicate."""
        return self.stored.position


class Committed(msgspec.Struct, frozen=True, gc=False):
    """An entry being applied: its stored form and its decoded document (plain data, not
    tracked by the garbage collector: a replay makes millions of them)."""

    stored: StoredEntry
    entry: Entry


TxT_contra = TypeVar("TxT_contra", contravariant=True)


class Projector(Protocol[TxT_contra]):
    """Something kept in step with the log inside the append transaction. ``TxT_contra`` is the
    adapter's transaction, as the adapter hands it to the projectors written for it."""

    name: str

    def apply(self, tx: TxT_contra, items: Sequence[Committed]) -> None:
        """Apply ``items`` (consecutive, in position order); may raise a ``LedgerError``."""
        ...

    def reset(self, tx: TxT_contra) -> None:
        """Forget everything applied (before a rebuild)."""
        ...


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One API key as stored (``tenant`` ``None``: an operator key)."""

    id: str
    tenant: str | None
    scopes: tuple[str, ...]
    secret_sha256: bytes
    label: str | None
    created_at: str
    revoked_at: str | None = None


class QuarantineRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One quarantined body as stored (``body_length`` and ``body_sha256`` describe the whole
    body when only a prefix was kept; both ``None`` otherwise)."""

    tenant: str
    received_at: str
    reason: str
    content_type: str | None
    body: bytes
    remote_addr: str | None
    request_id: str | None
    body_length: int | None = None
    body_sha256: str | None = None
    id: int = 0
    """Assigned when it is kept."""


KEY_COLUMNS = "id, tenant, scopes, secret_sha256, label, created_at, revoked_at"
"""The columns of a stored API key, in the order ``key_record`` reads them (every adapter)."""
QUARANTINE_COLUMNS = (
    "tenant, received_at, reason, content_type, body, remote_addr, request_id, body_length, "
    "body_sha256"
)
"""The columns of a quarantined body after its id, in the order ``quarantine_record`` reads
them (every adapter)."""


def key_record(row: Sequence[object]) -> KeyRecord:
    """A ``KeyRecord`` from a row of ``KEY_COLUMNS``, whatever driver read it."""
    key_id, tenant, scopes, digest, label, created_at, revoked_at = row
    return KeyRecord(
        id=str(key_id),
        tenant=None if tenant is None else str(tenant),
        scopes=tuple(str(scopes).split(",")),
        secret_sha256=bytes(digest),  # type: ignore[call-overload]
        label=None if label is None else str(label),
        created_at=str(created_at),
        revoked_at=None if revoked_at is None else str(revoked_at),
    )


def quarantine_record(row: Sequence[Any]) -> QuarantineRecord:
    """A ``QuarantineRecord`` from a row of id and ``QUARANTINE_COLUMNS``, whatever driver read
    it."""
    return QuarantineRecord(
        id=row[0],
        tenant=row[1],
        received_at=row[2],
        reason=row[3],
        content_type=row[4],
        body=bytes(row[5]),
        remote_addr=row[6],
        request_id=row[7],
        body_length=row[8],
        body_sha256=row[9],
    )


class KeyTable(Protocol):
    """API keys as stored: add, list, look up, revoke (a revocation is kept; nothing is ever
    deleted). Raises ``StoreUnavailable`` when the store cannot answer."""

    def add(self, record: KeyRecord) -> None:
        """Store a new key."""
        ...

    def all(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        ...

    def by_id(self, key_id: str) -> KeyRecord | None:
        """The key ``key_id``, revoked or not (``None``: there is none)."""
        ...

    def revoke(self, key_id: str, at: str) -> bool:
        """Revoke key ``key_id`` as of ``at``; whether an unrevoked key of that id existed."""
        ...

    def any(self) -> bool:
        """Whether any key was ever created."""
        ...


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in browser session of the compliance console, as stored: only the SHA-256 of
    its token; the key it was opened with (checked again on every request, so revoking the key
    ends the session); the anti-forgery token its forms carry; when it ends by itself."""

    token_sha256: bytes
    key_id: str
    csrf_token: str
    created_at: str
    expires_at: str


class SessionTable(Protocol):
    """Console sessions (``api.console``): start, look up, end. Shared by every worker and node
    of a deployment. Raises ``StoreUnavailable`` when the store cannot answer."""

    def start(self, session: ConsoleSession, now: str) -> None:
        """Store a new session, durably once this returns, and forget every session that
        expired at or before ``now``."""
        ...

    def get(self, token_sha256: bytes, now: str) -> ConsoleSession | None:
        """The session whose token hashes to ``token_sha256``, unless it has ended or expired
        (``expires_at`` at or before ``now``)."""
        ...

    def end(self, token_sha256: bytes) -> bool:
        """Forget the session (sign-out); whether there was one."""
        ...


class LogStore(Protocol):
    """Append-only, tamper-evident consent log."""

    def append(self, drafts: Sequence[Draft]) -> list[Appended]:
        """Append ``drafts`` in order as one atomic, durable unit; one result per draft."""
        ...

    def append_each(self, calls: Sequence[Sequence[Draft]]) -> list[list[Appended] | Exception]:
        """Append each of ``calls`` as ``append`` would, in order, committed together: each call
        is atomic and succeeds or fails alone (its error in its place in the result)."""
        ...

    def read_from(self, position: int, limit: int) -> list[StoredEntry]:
        """Up to ``limit`` entries with position >= ``position``, in position order."""
        ...

    def read_number(self, tenant: str, msisdn: str) -> list[StoredEntry]:
        """Every entry of ``tenant`` about ``msisdn``, in position order."""
        ...

    def read_positions(self, positions: Sequence[int]) -> list[StoredEntry]:
        """The entries at ``positions`` that exist, in position order."""
        ...

    def evidence(self, positions: Sequence[int]) -> dict[int, tuple[bytes | None, bytes | None]]:
        """(salt, evidence bytes) per position that has evidence; both ``None`` once erased."""
        ...

    def erase_evidence(self, position: int, reason: str) -> None:
        """Erase one entry's evidence, salt and all; the entry and every hash stay valid
        (``NotFound`` when there is no unerased evidence at ``position``)."""
        ...

    def erase(
        self,
        positions: Sequence[int],
        reason: str,
        tombstone: Draft | None = None,
        quarantined: Sequence[int] = (),
    ) -> Appended | None:
        """Erase the evidence of ``positions`` (salt and content; the row keeps when and why)
        and the bodies of the quarantined records ``quarantined`` (ids), and append
        ``tombstone``, as one atomic, durable unit; the tombstone's result (``None`` without
        one). Positions without unerased evidence, and records already erased, are skipped.
        The erased bytes are overwritten where the store keeps them live (``scrub`` makes them
        unrecoverable from its files); the entries and every hash stay valid."""
        ...

    def scrub(self) -> None:
        """Make erased bytes unrecoverable in the store's files (SQLite: copy the write-ahead
        log into the database and truncate it; PostgreSQL: vacuum the dead row versions of the
        evidence and quarantine tables). ``StoreUnavailable`` when it could not complete now
        (readers held old snapshots): run it again."""
        ...

    def keys(self) -> KeyTable:
        """The API keys (each call reads the newest committed state)."""
        ...

    def keys_for_update(self) -> AbstractContextManager[KeyTable]:
        """The API keys in one write transaction (what the block reads and writes commits
        together, or not at all)."""
        ...

    def sessions(self) -> SessionTable:
        """The compliance console's sessions (each call reads the newest committed state)."""
        ...

    def quarantine(self, record: QuarantineRecord) -> int:
        """Keep a body that could not be understood, durably once this returns; its id
        (``StoreUnavailable`` when it cannot be kept)."""
        ...

    def quarantined(self, tenant: str, *, after_id: int, limit: int) -> list[QuarantineRecord]:
        """Up to ``limit`` of ``tenant``'s quarantined bodies with id > ``after_id``, oldest
        first."""
        ...

    def head(self) -> int:
        """The position of the newest committed entry (0 for an empty log)."""
        ...

    def probe_write(self) -> None:
        """Raise ``StoreUnavailable`` unless a write could start now; writes nothing."""
        ...

    @property
    def clock(self) -> Callable[[], datetime]:
        """The one clock every "now" of the ledger comes from (``recorded_at``, receive times,
        a decision's default ``at``): the database's own where several nodes share it,
        injectable for tests."""
        ...

    @property
    def location(self) -> str:
        """Where the store is, for people (a path, or a URL with its password masked)."""
        ...

    def lease(self, job: str) -> Lease:
        """The lease that makes this process the one runner of ``job`` in the deployment
        (``ledger.runner``)."""
        ...

    def close(self) -> None:
        """Release the store's connections (and any lease this process holds)."""
        ...
