"""The SQLite engine assembled: the log store with its projectors, and the ports built on it.

Guarantee: ``open_engine`` is the one place the SQLite adapters are put together; the ledger
asks ``projections.engine`` for an engine and uses its ports, never the parts' classes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ledger.sqlite.store import SqliteLogStore
from ledger.timefmt import utc_now
from projections.engine import Engine
from projections.sqlite.checkpoints import SqliteCheckpoints
from projections.sqlite.image import SqliteImages
from projections.sqlite.projectors import projectors
from projections.sqlite.read_model import SqliteReadModel, SqliteUnitOfWork
from projections.sqlite.rebuild import SqliteMaintenance


def open_engine(path: str | Path, clock: Callable[[], datetime] | None = None) -> Engine:
    """The SQLite adapters on the database at ``path`` (created and migrated if needed), every
    "now" from ``clock`` (this machine's UTC clock by default: one machine, one clock)."""
    store = SqliteLogStore(path, projectors(), clock or utc_now)
    return Engine(
        store=store,
        read_model=SqliteReadModel(store),
        unit_of_work=SqliteUnitOfWork(store),
        maintenance=SqliteMaintenance(store),
        checkpoints=SqliteCheckpoints(store),
        images=SqliteImages(store),
    )
