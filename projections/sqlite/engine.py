"""The SQLite engine assembled: the log store with its projectors, and the ports built on it.

Guarantee: ``open_engine`` is the one place the SQLite adapters are put together; the ledger
asks for an engine and uses its ports (``projections.read_model``), never the parts' classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ledger.sqlite.store import SqliteLogStore
from projections.read_model import Maintenance, ReadModel, UnitOfWork
from projections.sqlite.checkpoints import SqliteCheckpoints
from projections.sqlite.projectors import projectors
from projections.sqlite.read_model import SqliteReadModel, SqliteUnitOfWork
from projections.sqlite.rebuild import SqliteMaintenance


@dataclass(frozen=True)
class Engine:
    """One storage engine's adapters, opened on one database."""

    store: SqliteLogStore
    read_model: ReadModel
    unit_of_work: UnitOfWork
    maintenance: Maintenance
    checkpoints: SqliteCheckpoints


def open_engine(path: str | Path, clock: Callable[[], datetime]) -> Engine:
    """The SQLite adapters on the database at ``path`` (created and migrated if needed), every
    "now" from ``clock``."""
    store = SqliteLogStore(path, projectors(), clock)
    return Engine(
        store=store,
        read_model=SqliteReadModel(store),
        unit_of_work=SqliteUnitOfWork(store),
        maintenance=SqliteMaintenance(store),
        checkpoints=SqliteCheckpoints(store),
    )
