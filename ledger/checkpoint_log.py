"""Signed checkpoints of the log, kept forever by the store (``CheckpointTable``).

Guarantees: a checkpoint is signed only for a tree larger than the previous checkpoint's, and only
after a consistency proof from the previous checkpoint to the new tree has been built from the
stored tree and verified (so no two checkpoints are ever signed without a consistency proof
between them); signing runs inside the store's write transaction, so several workers never sign
twice for one interval.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from ledger import merkle, tree
from ledger.checkpoint import Checkpoint, Signer, checkpoint_body
from ledger.errors import Conflict, TamperDetected
from ledger.timefmt import format_time, parse_time
from ledger.tree import TreeNodes


class CheckpointRecord(msgspec.Struct, frozen=True):
    """One signed checkpoint as stored."""

    size: int
    root: bytes
    note: str
    signed_at: str


class CheckpointTable(Protocol):
    """Where a store keeps its checkpoints (inside the write transaction of ``sign``)."""

    def latest(self) -> CheckpointRecord | None:
        """The newest checkpoint, or ``None`` before the first."""
        ...

    def add(self, record: CheckpointRecord) -> None:
        """Keep ``record`` (forever)."""
        ...


def check_signer(stored: str | None, signer: Signer) -> bool:
    """Whether ``signer``'s verifier key must now be stored as the log's (none is yet);
    ``Conflict`` when the log already names another key: one key signs a log's checkpoints."""
    if stored is None:
        return True
    if stored != signer.verifier_key:
        raise Conflict(
            f"this log's checkpoints are signed by key {stored}; refusing to sign with "
            f"{signer.verifier_key} (give every node the same --signing-key)"
        )
    return False


def sign(
    table: CheckpointTable,
    nodes: TreeNodes,
    signer: Signer,
    origin: str,
    now: datetime,
    *,
    min_interval: float | None = None,
) -> CheckpointRecord | None:
    """Sign a checkpoint of the stored tree ``nodes`` if it grew, keeping it in ``table`` (both
    inside one write transaction).

    Returns the new checkpoint; the latest one if the tree has not grown since; ``None`` when
    ``min_interval`` seconds have not passed since the latest. Raises ``TamperDetected`` if the
    stored tree is not consistent with the latest checkpoint.
    """
    size = nodes.size()
    previous = table.latest()
    if previous is not None and previous.size >= size:
        return previous
    too_soon = (
        previous is not None
        and min_interval
        and (now - parse_time(previous.signed_at) < timedelta(seconds=min_interval))
    )
    if too_soon:
        return None
    root = tree.root(nodes, size)
    if previous is not None and previous.size > 0:
        proof = tree.consistency_proof(nodes, previous.size, size)
        if not merkle.verify_consistency(previous.size, size, previous.root, root, proof):
            raise TamperDetected(
                f"the log at size {size} is not consistent with checkpoint {previous.size}; "
                "refusing to sign"
            )
    note = signer.sign_note(checkpoint_body(Checkpoint(origin=origin, size=size, root=root)))
    record = CheckpointRecord(size, root, note, format_time(now))
    table.add(record)
    return record
