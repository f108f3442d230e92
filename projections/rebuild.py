"""Rebuild: drop every projection and replay the log into it, through the ledger's adapter.

Guarantee: after ``rebuild`` each projection equals what live appends produced (the property
tests check it); ``matches_rebuild`` answers whether that holds now without changing anything.
"""

from __future__ import annotations

from collections.abc import Callable

from projections.ledger import ConsentLedger


def rebuild(ledger: ConsentLedger, progress: Callable[[int], None] | None = None) -> int:
    """Drop and replay every projection in one transaction; returns the entries replayed."""
    return ledger.maintenance.rebuild(progress)


def matches_rebuild(ledger: ConsentLedger) -> bool:
    """Whether the live projections equal a fresh replay (checked, nothing changed)."""
    return ledger.maintenance.matches_rebuild()
