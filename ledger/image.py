"""A store's image: everything it holds, read at one snapshot and written into another store
as it was (``consent-ledger copy-store``, between engines in either direction).

Guarantees every adapter gives: an image is read in one consistent snapshot (appends may go on
meanwhile; they are not in it); ``restore`` writes entries byte for byte at their positions
(the destination's positions must continue, densely), with their evidence rows as they were
(salt, content, or the tombstone of an erasure), hashes them into the tree and applies them to
the projections as a replay would, in one transaction; ``restore_records`` keeps checkpoints,
API keys, quarantined bodies (with their ids) and the verifier key as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import msgspec

from ledger.checkpoint_log import CheckpointRecord
from ledger.store import KeyRecord, QuarantineRecord, StoredEntry


class EvidenceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One evidence row as stored: salted content, or the tombstone of its erasure."""

    salt: bytes | None
    content: bytes | None
    erased_at: str | None = None
    erase_reason: str | None = None


class ImageEntry(msgspec.Struct, frozen=True):
    """One entry with its evidence row, if it has one."""

    stored: StoredEntry
    evidence: EvidenceRecord | None


class SignerRecord(msgspec.Struct, frozen=True):
    """The verifier key a log's checkpoints are signed with, and since when."""

    verifier_key: str
    recorded_at: str


class Records(msgspec.Struct, frozen=True, kw_only=True):
    """Everything beside the entries."""

    checkpoints: list[CheckpointRecord]
    keys: list[KeyRecord]
    quarantine: list[QuarantineRecord]
    signer: SignerRecord | None


class StoreImage(Protocol):
    """One snapshot of a store (see the module)."""

    def head(self) -> int:
        """The newest position in the snapshot (0 for an empty log)."""
        ...

    def root(self) -> bytes:
        """The RFC 9162 root of the tree at ``head``."""
        ...

    def entries(self, after: int, limit: int) -> list[ImageEntry]:
        """Up to ``limit`` entries with position > ``after``, in order."""
        ...

    def records(self) -> Records:
        """Checkpoints, keys, quarantined bodies and the verifier key."""
        ...


class StoreImages(Protocol):
    """Reading a store's image, and writing one into an empty store."""

    def read(self) -> AbstractContextManager[StoreImage]:
        """The store's image at one snapshot, for the block."""
        ...

    def is_empty(self) -> bool:
        """Whether the store holds nothing at all (no entry, key, checkpoint or quarantined
        body): the only store an image may be written into."""
        ...

    def restore(self, items: Sequence[ImageEntry]) -> None:
        """Write ``items`` (consecutive, continuing the log) as they were (see the module)."""
        ...

    def restore_records(self, records: Records) -> None:
        """Keep ``records`` as they were (see the module)."""
        ...

    def root(self) -> bytes:
        """The RFC 9162 root of the whole stored tree (of the newest committed state)."""
        ...
