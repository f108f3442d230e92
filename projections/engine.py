"""Choosing the storage engine: the one place a store location (``ledger.location``) becomes
an engine's adapters.

Guarantee: the rest of the ledger sees only ports (``ledger.store``, ``projections.read_model``);
the adapters of the engine the location names are imported here, on first use, so a SQLite
deployment never loads PostgreSQL's driver and vice versa.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ledger.image import StoreImages
from ledger.location import StoreLocation
from ledger.store import LogStore
from ledger.verify import Progress, Report
from projections.config import PolicyConflict
from projections.read_model import CheckpointSigning, Maintenance, ReadModel, UnitOfWork


@dataclass(frozen=True)
class Engine:
    """One storage engine's adapters, opened on one database."""

    store: LogStore
    read_model: ReadModel
    unit_of_work: UnitOfWork
    maintenance: Maintenance
    checkpoints: CheckpointSigning
    images: StoreImages


@dataclass(frozen=True)
class Verification:
    """What ``verify_store`` found: the log's report, the projection tables that differ from a
    replay (table → earliest differing position), and the policy versions naming two
    policies."""

    report: Report
    differences: dict[str, int]
    conflicts: list[PolicyConflict]


def open_engine(
    location: StoreLocation,
    clock: Callable[[], datetime] | None = None,
    *,
    pool_size: int | None = None,
) -> Engine:
    """The adapters of the store at ``location`` (created and migrated if need be). Every "now"
    comes from ``clock`` when given, else from the engine's own clock (the database's, for a
    store shared by several nodes). ``pool_size``: reading connections per process, where the
    engine pools them."""
    if location.engine == "postgresql":
        from projections.postgres.engine import open_engine as open_postgres

        assert location.url is not None
        return open_postgres(location.url, clock, pool_size=pool_size)
    from projections.sqlite.engine import open_engine as open_sqlite

    assert location.path is not None
    return open_sqlite(location.path, clock)


def verify_store(
    location: StoreLocation, verifier: str | None, progress: Progress | None = None
) -> Verification:
    """Verify the store at ``location`` read-only, in one snapshot: every entry re-hashed, the
    tree and checkpoints checked, the projections replayed and compared
    (docs/evidence.md §8). Never creates, migrates or writes a database."""
    if location.engine == "postgresql":
        from projections.postgres.verification import verify_database as verify_postgres

        assert location.url is not None
        return verify_postgres(location.url, verifier, progress)
    from projections.sqlite.verification import verify_database as verify_sqlite

    assert location.path is not None
    return verify_sqlite(location.path, verifier, progress)
