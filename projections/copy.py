"""Copying a whole store into an empty one, between engines in either direction
(``consent-ledger copy-store``).

Guarantees: the source is read at one snapshot (it may take appends meanwhile; they are not
copied); a destination holding anything is refused before anything is written; entries are
copied byte for byte at their positions with their evidence (tombstones of erasures included),
then checkpoints, API keys, quarantined bodies and the verifier key; the copy succeeds only
when the destination's head and tree root equal the source snapshot's (``verify`` on the
destination is the caller's last step).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from ledger.errors import Conflict, TamperDetected
from ledger.image import StoreImages

BATCH = 5_000
"""Entries written per destination transaction."""


class Copied(msgspec.Struct, frozen=True, kw_only=True):
    """What was copied."""

    entries: int
    checkpoints: int
    keys: int
    quarantined: int
    root: str
    """The tree root both stores have at ``entries`` (hex)."""


def copy_store(
    source: StoreImages,
    target: StoreImages,
    progress: Callable[[int, int], None] | None = None,
) -> Copied:
    """Copy ``source`` into the empty ``target`` (see the module); ``progress(done, total)``
    after each batch of entries. ``Conflict`` when ``target`` is not empty; ``TamperDetected``
    when the copy's head or root differ from the source's."""
    if not target.is_empty():
        raise Conflict(
            "the destination store is not empty; copy-store writes only into an empty one"
        )
    with source.read() as image:
        head, root = image.head(), image.root()
        done = 0
        while done < head:
            batch = image.entries(done, min(BATCH, head - done))
            target.restore(batch)
            done = batch[-1].stored.position
            if progress is not None:
                progress(done, head)
        records = image.records()
    target.restore_records(records)
    copied_root = target.root()
    if copied_root != root:
        raise TamperDetected(
            f"the copy's tree root {copied_root.hex()} differs from the source's {root.hex()} "
            f"at {head} entries"
        )
    return Copied(
        entries=head,
        checkpoints=len(records.checkpoints),
        keys=len(records.keys),
        quarantined=len(records.quarantine),
        root=root.hex(),
    )
