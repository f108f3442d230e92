"""The rule a retraction must pass before it is appended, for every storage adapter.

Guarantees: a retraction of position N by tenant T is appended only if the log holds an entry
of T at N, of a retractable type, that no entry of T has retracted yet; otherwise
``RetractionError`` says which of these failed. The check runs inside the append's write
transaction (entries written earlier in it included), so two retractions of one entry never
both pass.
"""

from __future__ import annotations

from typing import Protocol

from ledger.errors import RetractionError
from ledger.events import RETRACTABLE_TYPES

MAX_POSITION = 2**63 - 1
"""The largest position a store keeps (a signed 64-bit integer)."""


class RetractionReader(Protocol):
    """The reads the rule needs, inside the append's write transaction."""

    def type_at(self, tenant: str, position: int) -> str | None:
        """The type of ``tenant``'s entry at ``position``; ``None`` when the log has no entry
        there or it is another tenant's."""
        ...

    def retraction_of(self, tenant: str, position: int) -> int | None:
        """The position of ``tenant``'s entry that retracted ``position``, if any."""
        ...


def check_retraction(reader: RetractionReader, tenant: str, target: int) -> None:
    """Raise ``RetractionError`` unless ``tenant`` may retract the entry at ``target`` now."""
    kind = reader.type_at(tenant, target) if 0 < target <= MAX_POSITION else None
    if kind is None:
        raise RetractionError(f"there is no entry at position {target} to retract")
    if kind not in RETRACTABLE_TYPES:
        raise RetractionError(f"a {kind} entry (position {target}) cannot be retracted")
    again = reader.retraction_of(tenant, target)
    if again is not None:
        raise RetractionError(f"position {target} was already retracted by position {again}")
